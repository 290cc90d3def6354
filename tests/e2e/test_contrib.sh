#!/bin/bash
# contrib/: the Grafana dashboard and the Prometheus alert rules name only
# metrics that a running daemon exposes (docs/metrics.md), with label values
# that the metrics take; the dashboard is valid JSON whose every query is a
# PromQL expression promtool accepts, and the rules pass `promtool check
# rules`. The daemon listens on 127.0.8.11.
source "$(dirname "$0")/lib.sh"

SRC=$(cd "$E2E_HERE/../.." && pwd)
ADDR=127.0.8.11
port_on() { $PY -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
SMTP_PORT=$(port_on $ADDR)
ADMIN_PORT=$(port_on $ADDR)
PROMTOOL=$(command -v promtool || echo /usr/local/lib/outpost-test/promtool)
DASHBOARD=$SRC/contrib/grafana/outpost.json
RULES=$SRC/contrib/prometheus/outpost-alerts.yml

cat >"$CONF" <<EOC
[server]
data_dir = $DATA
[submission]
listen = $ADDR:$SMTP_PORT
[admin]
listen = $ADDR:$ADMIN_PORT
EOC
"$OUTPOST" serve -c "$CONF" >>"$E2E_DIR/outpost.log" 2>&1 &
DAEMON_PID=$!
E2E_PIDS+=("$DAEMON_PID")
metrics() { curl -sf "http://$ADDR:$ADMIN_PORT/metrics" >"$E2E_DIR/metrics"; }
check "the daemon serves /metrics" wait_until 10 metrics
check "/metrics names its metrics" grep -q "^# TYPE outpost_queue_recipients gauge" "$E2E_DIR/metrics"

check "every outpost_* name and label value in contrib/ is in /metrics and docs/metrics.md" \
	$PY "$E2E_HERE/contrib_metrics.py" "$E2E_DIR/metrics" "$SRC/docs/metrics.md" \
	"$DASHBOARD" "$RULES"
check "contrib/ names a dozen metrics at least" \
	test "$(grep -oh 'outpost_[a-z0-9_]*' "$DASHBOARD" "$RULES" | sort -u | wc -l)" -ge 12

# The dashboard's queries, with Grafana's variables given values, as a
# rules file of recording rules: promtool parses each expression.
dashboard_as_rules() {
	$PY - "$DASHBOARD" >"$E2E_DIR/dashboard-rules.yml" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
assert exprs, "no queries"
print("groups:\n  - name: dashboard\n    rules:")
for i, e in enumerate(exprs):
    e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
    print("      - record: dashboard:query%d\n        expr: %s" % (i, json.dumps(e)))
EOP
}
check "the dashboard is JSON with queries" dashboard_as_rules
check "promtool parses every dashboard query" "$PROMTOOL" check rules "$E2E_DIR/dashboard-rules.yml"
check "promtool accepts the alert rules" "$PROMTOOL" check rules "$RULES"
check "the alert rules cover queue growth, deferrals, TLS failures and commit latency" \
	bash -c "grep -q 'alert: OutpostQueueGrowing' '$RULES' && grep -q 'alert: OutpostHighDeferralRate' '$RULES' &&
		grep -q 'alert: OutpostTLSFailures' '$RULES' && grep -q 'alert: OutpostSpoolCommitSlow' '$RULES'"
e2e_stop
e2e_finish
