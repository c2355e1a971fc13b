/* fuzz_config.c — libFuzzer harness: arbitrary bytes as beats.yml text.
 *
 * The loader must turn every input into either a config or a "name:LINE:COL:"
 * error, never a crash or a leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/config.h"
#include "hostbeat/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hb_config cfg;
	struct cfg_error err;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	log_init(LOG_LEVEL_ERROR, NULL, true, NULL);
	if (cfg_load_string(text, "fuzz.yml", NULL, 0, &cfg, &err) == 0)
		cfg_free(&cfg);
	else if (strncmp(err.msg, "fuzz.yml:", 9) != 0 && strncmp(err.msg, "fuzz.yml", 8) != 0)
		abort(); /* every error names the file */
	free(text);
	return 0;
}
