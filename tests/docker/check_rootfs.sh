#!/usr/bin/env bash
# check_rootfs.sh — the container image without Docker: a minimal Debian bookworm root
# (debootstrap --variant=minbase) gets exactly the runtime packages of the Dockerfile's
# last stage (parsed from the Dockerfile, so they cannot drift) and the files the image
# has, then hostbeat is run in it with chroot (own mount + PID namespace, /proc mounted,
# like a container).
#
#   tests/docker/check_rootfs.sh [check]         prepare + the checks below; exit 0/1, 77 = skip
#   tests/docker/check_rootfs.sh image-check     the same on the Dockerfile's build stage
#                                                 (its packages, its `RUN make ...` on the
#                                                 context minus .dockerignore) instead of
#                                                 ./hostbeat
#   tests/docker/check_rootfs.sh prepare         print the path of a fresh staged root
#   tests/docker/check_rootfs.sh exec ROOT [VAR=value ...] -- CMD...
#                                                 run CMD in ROOT (cwd /usr/share/hostbeat,
#                                                 a clean environment plus the VARs)
#   tests/docker/check_rootfs.sh clean ROOT      remove a staged root
#   tests/docker/check_rootfs.sh runtime-packages | build-packages   (the parsed lists)
#
# check: `ldd /usr/local/bin/hostbeat` finds every library; `hostbeat version` exits 0;
# the entrypoint with ELASTICSEARCH_HOSTS/KIBANA_HOST set passes `test config`; a pcap of
# tests/pcap/recorded replayed through the entrypoint produces events.
#
# Cache (reused between runs): $HB_ROOTFS_CACHE (default /var/cache/hostbeat-rootfs)
#   base/            debootstrap minbase bookworm, never modified after it is made
#   runtime-<hash>/  base + the runtime packages (hash of the list; other hashes removed)
#   build-<hash>/    base + the build stage's packages (image-check only)
#   stage.XXXX/      a copy of runtime-<hash> plus the image's files, per run (removed)
# The first run downloads ~50 MB from the Debian mirror of /etc/apt/sources.list*
# (override: HB_DEBIAN_MIRROR) and takes minutes; later runs take seconds.
#
# Environment: HOSTBEAT (binary, default ./hostbeat), HB_ROOTFS_CACHE, HB_DEBIAN_MIRROR.
# Needs root, debootstrap (Debian package), unshare + chroot (util-linux, coreutils).
set -euo pipefail
# functions run inside $(...) must stop at the first failure too
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."

SUITE=bookworm
CACHE=${HB_ROOTFS_CACHE:-/var/cache/hostbeat-rootfs}
HOSTBEAT=${HOSTBEAT:-./hostbeat}
SKIP=77

skip() {
	echo "check_rootfs: SKIP: $*" >&2
	exit $SKIP
}
die() {
	echo "check_rootfs: FAIL: $*" >&2
	exit 1
}
log() { echo "check_rootfs: $*" >&2; }

# The packages of the one `apt-get install` in stage $1 of the Dockerfile (1 = first
# FROM, "last" = the runtime stage): continuation lines joined, words up to the first
# `&&`, options dropped.
dockerfile_packages() { # stage
	awk -v want="$1" '
		/^[[:space:]]*FROM[[:space:]]/ { stage++ }
		{ line[NR] = $0; st[NR] = stage }
		END {
			if (want == "last") want = stage
			text = ""
			for (i = 1; i <= NR; i++) {
				if (st[i] != want) continue
				l = line[i]
				if (l ~ /^[[:space:]]*#/) continue
				sub(/\\[[:space:]]*$/, " ", l)
				text = text " " l
			}
			n = split(text, w, /[[:space:]]+/)
			on = 0
			for (i = 1; i <= n; i++) {
				if (w[i] == "install" && w[i-1] == "apt-get") { on = 1; continue }
				if (!on) continue
				if (w[i] == "&&" || w[i] == ";" || w[i] == "||") break
				if (w[i] == "" || w[i] ~ /^-/) continue
				print w[i]
			}
		}' Dockerfile
}

# First URI of the host's apt sources that serves suite $1 with component main.
host_mirror() { # suite
	local suite=$1 f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		awk -v s="$suite" '$1 == "deb" {
			i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i+1) == s) { for (j = i+2; j <= NF; j++) if ($j == "main") { print $i; exit } }
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		awk -v s="$suite" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") &&
				    (" " comps " ") ~ / main /) { split(uris, u, " "); print u[1]; found = 1 }
				types = uris = suites = comps = ""
			}
			/^[[:space:]]*$/ { flush(); if (found) exit; next }
			/^#/ { next }
			/^Types:/ { sub(/^Types:[[:space:]]*/, ""); types = $0 }
			/^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
			/^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
			/^Components:/ { sub(/^Components:[[:space:]]*/, ""); comps = $0 }
			END { if (!found) flush() }' "$f"
	done
}

# Run a command in a root: own mount and PID namespace (mounts vanish with it), a fresh
# /proc, a clean environment.
in_root() { # root, env..., --, cmd...
	local root=$1
	shift
	local envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
		    LANG=C.UTF-8)
	while (($#)) && [[ $1 != -- ]]; do
		envs+=("$1")
		shift
	done
	[[ ${1:-} == -- ]] && shift
	# shellcheck disable=SC2016  # $0/$@ are the inner shell's
	unshare --mount --pid --fork --mount-proc="$root/proc" \
		chroot "$root" /usr/bin/env -i "${envs[@]}" /bin/sh -c \
		'if [ -d "$0" ]; then cd "$0"; else cd /; fi && exec "$@"' /usr/share/hostbeat "$@"
}

# $CACHE/base: debootstrap minbase, made in base.tmp and renamed when complete.
ensure_base() {
	[[ -f $CACHE/base/.hostbeat-base-ok ]] && return 0
	command -v debootstrap >/dev/null ||
		skip "debootstrap is not installed (Debian package: apt-get install -y debootstrap)"
	local mirror=${HB_DEBIAN_MIRROR:-$(host_mirror "$SUITE" | head -n 1)}
	[[ -n $mirror ]] || skip "no '$SUITE main' source in /etc/apt/sources.list*; set HB_DEBIAN_MIRROR"
	mkdir -p "$CACHE"
	rm -rf "$CACHE/base.tmp"
	log "debootstrap --variant=minbase $SUITE from $mirror (first run: minutes)"
	local t0=$SECONDS
	if ! debootstrap --variant=minbase "$SUITE" "$CACHE/base.tmp" "$mirror" \
		>"$CACHE/debootstrap.log" 2>&1; then
		tail -n 5 "$CACHE/debootstrap.log" >&2
		rm -rf "$CACHE/base.tmp"
		if grep -qiE 'Failed getting release|Could not resolve|Connection (refused|timed out)|unable to fetch|Network is unreachable' \
			"$CACHE/debootstrap.log"; then
			skip "debootstrap cannot reach $mirror (log above)"
		fi
		die "debootstrap failed (log: $CACHE/debootstrap.log)"
	fi
	# the apt sources of the debian:bookworm-slim image: suite, -updates, -security
	local sec
	sec=$(host_mirror "$SUITE-security" | head -n 1)
	{
		printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' \
			"$mirror" "$SUITE" "$SUITE"
		printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
		if [[ -n $sec ]]; then
			printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' \
				"$sec" "$SUITE"
			printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
		fi
	} >"$CACHE/base.tmp/etc/apt/sources.list.d/debian.sources"
	rm -f "$CACHE/base.tmp/etc/apt/sources.list"
	touch "$CACHE/base.tmp/.hostbeat-base-ok"
	mv "$CACHE/base.tmp" "$CACHE/base"
	log "base root made in $((SECONDS - t0))s"
}

# $CACHE/KIND-<hash>: base + the packages of a Dockerfile stage (runtime = the last,
# build = the first); echoes its path. Roots of older lists of the same kind are removed.
ensure_pkgroot() { # kind stage
	local kind=$1 pkgs hash dir
	pkgs=$(dockerfile_packages "$2" | sort -u | tr '\n' ' ')
	[[ -n ${pkgs// /} ]] || die "no apt-get install in the Dockerfile's $kind stage"
	hash=$(printf '%s' "$pkgs" | sha256sum | cut -c1-12)
	dir=$CACHE/$kind-$hash
	if [[ ! -f $dir/.hostbeat-pkgs-ok ]]; then
		ensure_base
		rm -rf "$dir.tmp"
		cp -a "$CACHE/base" "$dir.tmp"
		cp /etc/resolv.conf "$dir.tmp/etc/resolv.conf"
		printf '#!/bin/sh\nexit 101\n' >"$dir.tmp/usr/sbin/policy-rc.d"
		chmod 0755 "$dir.tmp/usr/sbin/policy-rc.d"
		log "installing the $kind packages: $pkgs"
		local t0=$SECONDS
		# shellcheck disable=SC2086  # the list is words
		if ! in_root "$dir.tmp" DEBIAN_FRONTEND=noninteractive -- sh -c \
			"apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs && rm -rf /var/lib/apt/lists/*" \
			>"$CACHE/apt-$kind.log" 2>&1; then
			tail -n 20 "$CACHE/apt-$kind.log" >&2
			rm -rf "$dir.tmp"
			if grep -qE '^(Err|W: Failed to fetch)' "$CACHE/apt-$kind.log"; then
				skip "apt-get in the root cannot reach the mirror (log above)"
			fi
			die "apt-get install of the $kind packages failed (log: $CACHE/apt-$kind.log)"
		fi
		rm -f "$dir.tmp/usr/sbin/policy-rc.d"
		printf '%s\n' "$pkgs" >"$dir.tmp/.hostbeat-pkgs-ok"
		rm -rf "$dir"
		mv "$dir.tmp" "$dir"
		find "$CACHE" -mindepth 1 -maxdepth 1 -name "$kind-*" ! -name "$kind-$hash" \
			-exec rm -rf --one-file-system {} +
		log "$kind packages installed in $((SECONDS - t0))s"
	fi
	echo "$dir"
}

# The build stage's `RUN make ...` (continuation lines joined), run in /src.
dockerfile_build_run() {
	awk '
		/^[[:space:]]*FROM[[:space:]]/ { stage++ }
		stage != 1 { next }
		/^[[:space:]]*#/ { next }
		{
			l = $0
			cont = sub(/\\[[:space:]]*$/, "", l)
			text = text l " "
			if (!cont) {
				if (text ~ /^RUN[[:space:]]+make[[:space:]]/) { sub(/^RUN[[:space:]]+/, "", text); print text }
				text = ""
			}
		}' Dockerfile
}

# The build stage without Docker: the build packages' root, the build context (the
# tree minus .dockerignore's patterns) in /src, the Dockerfile's `RUN make ...` run
# there. Echoes the path of a copy of the stage's /out (the caller removes its parent).
build_stage() {
	local broot work cmd t0=$SECONDS
	grep -qx 'WORKDIR /src' Dockerfile || die "the build stage's WORKDIR is not /src"
	cmd=$(dockerfile_build_run)
	[[ -n $cmd ]] || die "no 'RUN make ...' in the Dockerfile's build stage"
	broot=$(ensure_pkgroot build 1) || exit $?
	[[ $broot == "$CACHE"/build-* && -f $broot/.hostbeat-pkgs-ok ]] || die "bad build root '$broot'"
	work=$(mktemp -d "$CACHE/build.XXXXXX")
	cp -a "$broot/." "$work/"
	mkdir -p "$work/src"
	# .dockerignore: "**/x" anywhere, others anchored at the context root
	local ex=() pat
	while IFS= read -r pat; do
		pat=${pat%%#*}
		pat=${pat//[[:space:]]/}
		[[ -n $pat ]] || continue
		if [[ $pat == '**/'* ]]; then
			ex+=(--no-anchored "--exclude=${pat#'**/'}")
		else
			ex+=(--anchored "--exclude=./$pat")
		fi
	done <.dockerignore
	tar -C . "${ex[@]}" -cf - . | tar -C "$work/src" -xf -
	log "build stage: $cmd"
	if ! in_root "$work" -- sh -c "cd /src && $cmd" >"$CACHE/make.log" 2>&1; then
		tail -n 30 "$CACHE/make.log" >&2
		rm -rf --one-file-system "$work"
		die "the build stage failed (log: $CACHE/make.log)"
	fi
	[[ -x $work/out/usr/local/bin/hostbeat ]] || die "the build stage staged no /out/usr/local/bin/hostbeat"
	log "build stage done in $((SECONDS - t0))s"
	echo "$work/out"
}

# A per-run copy of the runtime root (a real one, <1 s: whatever runs in it cannot
# write through to the cache) with the image's files: with $1, the build stage's /out
# (image-check); else what that stage would stage, from ./hostbeat and the tree.
stage_root() { # [out dir]
	local runtime root out=${1:-}
	[[ -n $out || -x $HOSTBEAT ]] || die "$HOSTBEAT not built (make hostbeat)"
	runtime=$(ensure_pkgroot runtime last) || exit $?
	# never copy anything but a finished runtime root of the cache
	[[ $runtime == "$CACHE"/runtime-* && -f $runtime/.hostbeat-pkgs-ok ]] ||
		die "bad runtime root '$runtime'"
	root=$(mktemp -d "$CACHE/stage.XXXXXX")
	cp -a "$runtime/." "$root/"
	if [[ -n $out ]]; then
		cp -a "$out/." "$root/"
	else
		install -D -m 0755 "$HOSTBEAT" "$root/usr/local/bin/hostbeat"
		install -D -m 0755 tests/docker/entrypoint.sh "$root/usr/local/bin/hostbeat-entrypoint"
		install -D -m 0644 beats.docker.yml "$root/etc/hostbeat/beats.yml"
		mkdir -p "$root/usr/share/hostbeat/dashboards" "$root/usr/share/hostbeat/data"
		if [[ -d dashboards ]]; then
			cp -a dashboards/. "$root/usr/share/hostbeat/dashboards/"
		fi
	fi
	mkdir -p "$root/pcap"
	echo "$root"
}

clean_root() { # root
	[[ $1 == "$CACHE"/stage.* ]] || die "not a staged root: $1"
	rm -rf -- "$1"
}

check() { # [out dir]
	local root out rc pcap failed=0 t0=$SECONDS
	root=$(stage_root "${1:-}") || exit $?
	STAGED="$root ${STAGED:-}"
	# shellcheck disable=SC2086  # a list of our own paths
	trap 'rm -rf --one-file-system -- $STAGED' EXIT
	log "staged root $root ($((SECONDS - t0))s)"

	out=$(in_root "$root" -- ldd /usr/local/bin/hostbeat 2>&1) || true
	if grep -q 'not found' <<<"$out" || ! grep -q 'libpcap' <<<"$out"; then
		echo "$out" >&2
		log "not ok: ldd finds every library"
		failed=1
	else
		log "ok: ldd finds every library ($(grep -c '=>' <<<"$out") resolved)"
	fi

	if out=$(in_root "$root" -- hostbeat version 2>&1) && [[ $out == "hostbeat version "* ]]; then
		log "ok: $out"
	else
		echo "$out" >&2
		log "not ok: hostbeat version"
		failed=1
	fi

	local envs=(ELASTICSEARCH_HOSTS=http://localhost:9200 KIBANA_HOST=http://localhost:5601)
	if out=$(in_root "$root" "${envs[@]}" -- hostbeat-entrypoint test config 2>&1); then
		log "ok: entrypoint test config: $out"
	else
		echo "$out" >&2
		log "not ok: entrypoint test config"
		failed=1
	fi

	pcap=tests/pcap/recorded/docker0_redis.pcap
	cp "$pcap" "$root/pcap/"
	rc=0
	out=$(in_root "$root" "${envs[@]}" -- hostbeat-entrypoint -I "/pcap/${pcap##*/}" -t \
		-E output.elasticsearch.enabled=false -E output.console.enabled=true \
		-E setup.dashboards.enabled=false 2>/dev/null) || rc=$?
	local n
	n=$(grep -c '"type":"redis"' <<<"$out" || true)
	if ((rc == 0 && n > 0)); then
		log "ok: replay of ${pcap##*/} printed $n redis events"
	else
		log "not ok: replay of ${pcap##*/} (exit $rc, $n redis events)"
		failed=1
	fi
	log "checks took $((SECONDS - t0))s"
	return $failed
}

[[ $(id -u) -eq 0 ]] || skip "needs root (debootstrap, chroot, namespaces)"
if ! command -v unshare >/dev/null || ! command -v chroot >/dev/null; then
	skip "unshare/chroot missing"
fi

case ${1:-check} in
check) check ;;
image-check)
	out=$(build_stage) || exit $?
	STAGED=${out%/out}
	check "$out"
	;;
prepare) stage_root ;;
exec)
	shift
	root=$1
	shift
	in_root "$root" "$@"
	;;
clean) clean_root "$2" ;;
runtime-packages) dockerfile_packages last ;;
build-packages) dockerfile_packages 1 ;;
*)
	echo "usage: $0 [check|image-check|prepare|exec ROOT [VAR=v...] -- CMD...|clean ROOT|runtime-packages|build-packages]" >&2
	exit 2
	;;
esac
