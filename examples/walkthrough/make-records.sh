#!/usr/bin/env bash
# Writes N device readings and their labels as `key|json` lines (DIR/readings.txt, DIR/labels.txt; DIR defaults to
# .run/walkthrough) for kcat: any Kafka client would do. A device overheats when hot and loaded, or hot in turbo mode.
set -euo pipefail
n="${1:-3000}"
out="${2:-.run/walkthrough}"
mkdir -p "$out"
cd "$out"
awk -v n="$n" 'BEGIN { srand(7); start = 1700000000000
  for (i = 1; i <= n; i++) {
    d = "d" (i % 40); t = start + i * 1000
    temp = 20 + 80 * rand(); load = rand(); r = rand(); mode = (r < 0.3 ? "turbo" : (r < 0.6 ? "eco" : "normal"))
    printf "%s|{\"device_id\":\"%s\",\"ts\":%.0f,\"schema_version\":1,\"values\":{\"temp\":%.2f,\"load\":%.3f,\"mode\":\"%s\"}}\n", d, d, t, temp, load, mode > "readings.txt"
    printf "%s|{\"device_id\":\"%s\",\"ts\":%.0f,\"overheated\":%d}\n", d, d, t + 1, (temp > 70 && (load > 0.6 || mode == "turbo")) > "labels.txt"
  } }'
echo "wrote $out/readings.txt and $out/labels.txt ($n each)"
