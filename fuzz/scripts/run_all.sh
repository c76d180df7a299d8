#!/usr/bin/env bash
# Runs every fuzz target in turn, one job each, for SECONDS_PER_TARGET (default
# 600) seconds, on a working corpus in fuzz/corpus/<target> seeded from
# fuzz/seeds/<target>. Crashes land in fuzz/artifacts/<target>/; logs in
# fuzz/logs/<target>.log. Build first: cargo +nightly fuzz build -s none
set -u
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_TARGET:-600}
bin=target/x86_64-unknown-linux-gnu/release
mkdir -p logs
for spec in ${TARGETS:-request_json:8192 chat_template:4096 tokenizer:8192 gguf_parse:65536}; do
    t=${spec%%:*}
    len=${spec##*:}
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${secs}s, max_len $len, started $(date -u +%H:%M:%S)"
    "$bin/$t" "corpus/$t" "seeds/$t" -max_total_time="$secs" -max_len="$len" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="artifacts/$t/" -print_final_stats=1 > "logs/$t.log" 2>&1
    echo "   exit $?; $(grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "logs/$t.log" | tr '\n' ' ')"
    ls "artifacts/$t"
done
