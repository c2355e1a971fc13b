# Counter, touch, gat, cas, flush_all, verbosity, version, slabs, lru_crawler.
>>>
incr cnt 2
<<<
2
>>>
decr cnt 5
<<<
0
>>>
touch k1 100
<<<
TOUCHED
>>>
gat 60 k1 k2
<<<
VALUE k1 0 2
hi
END
>>>
cas k1 0 0 2 99
yo
<<<
EXISTS
>>>
flush_all 10
<<<
OK
>>>
verbosity 1
<<<
OK
>>>
version
<<<
VERSION 1.6.18
>>>
slabs reassign 3 -1
<<<
OK
>>>
lru_crawler crawl 1,2,3
<<<
OK
