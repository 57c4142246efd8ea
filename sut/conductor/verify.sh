#!/usr/bin/env bash
# End-to-end verification of the reference conductor against real Postgres, Redis and
# RabbitMQ containers. Builds the image, exercises every endpoint, the failure modes
# (Redis stop, Postgres restart, hung primary + DNS alias failover) and SIGTERM, and
# prints a throughput figure. Traffic goes only to 127.0.0.1 published ports.
#
#   bash sut/conductor/verify.sh            # full run (about 2 minutes)
#   KEEP=1 bash sut/conductor/verify.sh     # leave the containers running for inspection
#
# Needs: docker, curl, python3; `ab` (apache2-utils) is used for the throughput figure
# when present. Every container and network it creates is labelled i2s-harness.dev=1,
# named cdv-<pid>-*, and removed on exit (unless KEEP=1).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${IMAGE:-i2s-harness/conductor:dev}"
P="cdv-$$"
LABEL=(--label i2s-harness.dev=1)
NET="$P-net"
STANDBY_NET="$P-standby"
TOKEN="verify-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
PGPASS="pg-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
MQPASS="mq-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
PASS=0; FAIL=0

log()  { printf '\n== %s\n' "$*"; }
ok()   { PASS=$((PASS + 1)); printf '  ok   %s\n' "$*"; }
bad()  { FAIL=$((FAIL + 1)); printf '  FAIL %s\n' "$*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
now()  { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

cleanup() {
  if [[ "${KEEP:-0}" == 1 ]]; then echo "KEEP=1: containers $P-* left running"; return; fi
  docker ps -aq --filter "name=^$P-" | xargs -r docker rm -f >/dev/null 2>&1
  docker network rm "$NET" "$STANDBY_NET" >/dev/null 2>&1
}
trap cleanup EXIT

for img in python:3.11-slim postgres:15-alpine redis:7-alpine rabbitmq:3-management-alpine; do
  docker image inspect "$img" >/dev/null 2>&1 || { echo "missing image $img (run shared/offline-images/build.sh)"; exit 2; }
done

log "build $IMAGE"
t=$(now)
DOCKER_BUILDKIT=0 docker build -q "${LABEL[@]}" -t "$IMAGE" "$HERE" >/dev/null 2>/tmp/$P-build.err || { cat /tmp/$P-build.err; exit 2; }
echo "  build time: $(since "$t")s"

log "dependencies"
docker network create "${LABEL[@]}" "$NET" >/dev/null
docker network create "${LABEL[@]}" "$STANDBY_NET" >/dev/null
pg_run() { # name network alias...
  local name=$1 net=$2; shift 2
  docker run -d "${LABEL[@]}" --name "$name" --network "$net" "$@" \
    -e POSTGRES_USER=i2s -e POSTGRES_PASSWORD="$PGPASS" -e POSTGRES_DB=i2s postgres:15-alpine >/dev/null
}
pg_run "$P-pg1" "$NET" --network-alias postgres
pg_run "$P-pg2" "$STANDBY_NET"
docker run -d "${LABEL[@]}" --name "$P-redis" --network "$NET" --network-alias redis redis:7-alpine >/dev/null
docker run -d "${LABEL[@]}" --name "$P-mq" --network "$NET" --network-alias rabbitmq \
  -e RABBITMQ_DEFAULT_USER=i2s -e RABBITMQ_DEFAULT_PASS="$MQPASS" rabbitmq:3-management-alpine >/dev/null
mq() { # rabbitmq CLI; the offline stand-in image names its node rabbit@localhost
  local tool=$1; shift
  docker exec "$P-mq" "$tool" -n rabbit@localhost "$@" 2>/dev/null || docker exec "$P-mq" "$tool" "$@" 2>/dev/null
}
wait_for() { # seconds command...
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do (( $(date +%s) > deadline )) && return 1; sleep 0.2; done
}
wait_for 60 docker exec "$P-pg1" pg_isready -U i2s -d i2s || { echo "pg1 did not start"; exit 2; }
wait_for 60 docker exec "$P-pg2" pg_isready -U i2s -d i2s || { echo "pg2 did not start"; exit 2; }
wait_for 90 mq rabbitmq-diagnostics -q check_port_connectivity || { echo "rabbitmq did not start"; exit 2; }
echo "  postgres x2, redis, rabbitmq up"

APP_ENV=(-e DATABASE_URL="postgresql://i2s:$PGPASS@postgres:5432/i2s" -e REDIS_URL="redis://redis:6379/0"
         -e RABBITMQ_URL="amqp://i2s:$MQPASS@rabbitmq:5672/" -e ENVIRONMENT=staging -e LOG_LEVEL=info)
app_run() { # name extra-args...
  local name=$1; shift
  docker run -d "${LABEL[@]}" --name "$name" --network "$NET" --cpus=1 \
    -p 127.0.0.1::8080 -p 127.0.0.1::9090 "${APP_ENV[@]}" "$@" "$IMAGE" >/dev/null
}
port_of() { docker port "$1" "$2/tcp" | head -1 | sed 's/.*://'; }

log "start conductor (dependencies already up)"
t=$(now)
app_run "$P-app" -e REPLICA_NAME=conductor-verify-0 -e ADMIN_TOKEN="$TOKEN" -e CPU_COST_MS=5
B="127.0.0.1:$(port_of "$P-app" 8080)"; M="127.0.0.1:$(port_of "$P-app" 9090)"
wait_for 60 curl -sf "http://$B/health/live"; echo "  live after $(since "$t")s"
wait_for 60 curl -sf "http://$B/health/ready"; echo "  ready after $(since "$t")s"
AUTH=(-H "Authorization: Bearer $TOKEN")

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
body() { curl -s "$@"; }
jget() { python3 -c "import sys,json; d=json.load(sys.stdin); print(d$1)"; }
header() { curl -s -D - -o /dev/null "${@:2}" | tr -d '\r' | awk -v h="$1" 'tolower($0) ~ "^"tolower(h)":" {sub(/^[^:]*: */,""); print}'; }

log "health, pipelines, metrics"
check "GET /health/live 200" test "$(code "http://$B/health/live")" = 200
check "GET /health/ready 200" test "$(code "http://$B/health/ready")" = 200
check "X-Served-By on responses" test "$(header X-Served-By "http://$B/health/live")" = conductor-verify-0
check "X-Served-By on 404s" test "$(header X-Served-By "http://$B/nope")" = conductor-verify-0
resp=$(curl -s -w ' %{http_code}' -XPOST "http://$B/api/v1/pipeline" -H 'content-type: application/json' -d '{"name":"verify","seq":1}')
check "POST /api/v1/pipeline 201" test "${resp##* }" = 201
ID=$(echo "${resp% *}" | jget '["id"]')
check "POST body has served_by" test "$(echo "${resp% *}" | jget '["served_by"]')" = conductor-verify-0
check "GET /api/v1/pipeline/{id} 200 (cache hit)" test "$(header X-Cache "http://$B/api/v1/pipeline/$ID")" = hit
check "GET returns the payload" test "$(body "http://$B/api/v1/pipeline/$ID" | jget '["payload"]["seq"]')" = 1
docker exec "$P-redis" redis-cli DEL "pipeline:$ID" >/dev/null
check "GET falls back to Postgres (cache miss)" test "$(header X-Cache "http://$B/api/v1/pipeline/$ID")" = miss
check "GET unknown id 404" test "$(code "http://$B/api/v1/pipeline/00000000-0000-0000-0000-000000000000")" = 404
check "POST non-object 400" test "$(code -XPOST "http://$B/api/v1/pipeline" -d '[1]')" = 400
check "GET /api/v1/pipelines/count" test "$(body "http://$B/api/v1/pipelines/count" | jget '["count"]')" -ge 1
check "row in Postgres with served_by" test "$(docker exec "$P-pg1" psql -U i2s -d i2s -Atc "select served_by from pipelines where id='$ID'")" = conductor-verify-0
check "Redis key has a TTL" test "$(docker exec "$P-redis" redis-cli TTL "pipeline:$ID")" -gt 0
q=$(mq rabbitmqctl -q list_queues name durable messages | awk '$1=="pipeline_commands"')
check "queue pipeline_commands durable with messages ($q)" bash -c "[[ '$q' =~ ^pipeline_commands[[:space:]]+true[[:space:]]+[1-9] ]]"
for url in "http://$B/metrics" "http://$M/metrics"; do
  mt=$(body "$url")
  check "$url: active_pipeline_executions" grep -q '^active_pipeline_executions ' <<<"$mt"
  check "$url: conductor_replica_info{replica=...}" grep -q 'conductor_replica_info{.*replica="conductor-verify-0"' <<<"$mt"
  check "$url: request counter by route/status" grep -q 'conductor_http_requests_total{method="POST",route="/api/v1/pipeline",status="201"}' <<<"$mt"
done

log "idempotency"
r1=$(curl -s -w ' %{http_code}' -XPOST "http://$B/api/v1/pipeline" -H 'Idempotency-Key: verify-key-1' -d '{"n":1}')
r2=$(curl -s -w ' %{http_code}' -XPOST "http://$B/api/v1/pipeline" -H 'Idempotency-Key: verify-key-1' -d '{"n":1}')
check "first POST 201, repeat 200" test "${r1##* } ${r2##* }" = "201 200"
check "repeat returns the original id" test "$(echo "${r1% *}" | jget '["id"]')" = "$(echo "${r2% *}" | jget '["id"]')"
codes=$(for i in $(seq 1 12); do curl -s -o /dev/null -w '%{http_code}\n' -XPOST "http://$B/api/v1/pipeline" -H 'Idempotency-Key: verify-key-2' -d '{"n":2}' & done; wait)
check "12 concurrent same-key POSTs: one 201, eleven 200" test "$(sort <<<"$codes" | uniq -c | tr -s ' ' | tr '\n' ';')" = " 11 200; 1 201;"
check "exactly one row for the key" test "$(docker exec "$P-pg1" psql -U i2s -d i2s -Atc "select count(*) from pipelines where idempotency_key='verify-key-2'")" = 1

log "fault injection"
check "admin without token 401" test "$(code "http://$B/admin/faults")" = 401
check "admin with wrong token 401" test "$(code -H 'Authorization: Bearer wrong' "http://$B/admin/faults")" = 401
check "invalid fault 400" test "$(code -XPUT "${AUTH[@]}" "http://$B/admin/faults" -d '{"error_rate":3}')" = 400
check "PUT error_status 502" test "$(code -XPUT "${AUTH[@]}" "http://$B/admin/faults" -d '{"error_status":502}')" = 200
check "POST answers injected 502" test "$(code -XPOST "http://$B/api/v1/pipeline" -d '{}')" = 502
check "injected response is marked" test "$(header X-Fault-Injected -XPOST "http://$B/api/v1/pipeline" -d '{}')" = error
check "health endpoints unaffected by /api/ faults" test "$(code "http://$B/health/ready")" = 200
code -XPUT "${AUTH[@]}" "http://$B/admin/faults" -d '{"error_status":503,"error_rate":0.5}' >/dev/null
mix=$(for i in $(seq 1 40); do code "http://$B/api/v1/pipelines/count"; echo; done | sort | uniq -c | tr -s ' ' | tr '\n' ';')
check "error_rate 0.5 gives a mix of 200 and 503 ($mix)" bash -c "[[ '$mix' == *' 200;'* && '$mix' == *' 503;'* ]]"
code -XPUT "${AUTH[@]}" "http://$B/admin/faults" -d '{"latency_ms":400}' >/dev/null
lat=$(curl -s -o /dev/null -w '%{time_total}' "http://$B/api/v1/pipelines/count")
check "latency_ms 400 delays /api/ ($lat s)" python3 -c "import sys; sys.exit(0 if float('$lat') >= 0.4 else 1)"
code -XPUT "${AUTH[@]}" "http://$B/admin/faults" -d '{"fail_readiness":true}' >/dev/null
check "fail_readiness -> /health/ready 503" test "$(code "http://$B/health/ready")" = 503
check "... naming fault_injection" grep -q fault_injection <<<"$(body "http://$B/health/ready")"
check "... while /health/live stays 200" test "$(code "http://$B/health/live")" = 200
code -XPUT "${AUTH[@]}" "http://$B/admin/faults" -d '{"cpu_cost_ms":0,"paths":["/api/v1/pipelines"],"error_status":500}' >/dev/null
check "paths prefix: count 500, POST unaffected" test "$(code "http://$B/api/v1/pipelines/count") $(code -XPOST "http://$B/api/v1/pipeline" -d '{}')" = "500 201"
check "GET /admin/faults shows effective cpu cost 0" test "$(body "${AUTH[@]}" "http://$B/admin/faults" | jget '["effective_cpu_cost_ms"]')" = 0.0
check "DELETE /admin/faults" test "$(code -XDELETE "${AUTH[@]}" "http://$B/admin/faults")" = 200
check "back to normal after DELETE" test "$(code "http://$B/api/v1/pipelines/count")" = 200
app_run "$P-noadmin" -e REPLICA_NAME=no-admin
NB="127.0.0.1:$(port_of "$P-noadmin" 8080)"; wait_for 30 curl -sf "http://$NB/health/live"
check "ADMIN_TOKEN unset -> /admin/faults 404" test "$(code -H 'Authorization: Bearer x' "http://$NB/admin/faults")" = 404
docker rm -f "$P-noadmin" >/dev/null

# poll URL seconds interval method -> "first_non200_at last_transition_to_200_at max_latency codes"
poll() {
  python3 - "$@" <<'EOF'
import sys, time, urllib.request, urllib.error
url, dur, iv, method = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
t0 = time.time(); first_bad = None; last_good = None; prev = None; maxlat = 0.0; codes = {}
while time.time() - t0 < dur:
    s = time.time()
    try:
        req = urllib.request.Request(url, method=method, data=b'{"probe":1}' if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as r: c = r.status
    except urllib.error.HTTPError as e: c = e.code
    except Exception: c = 0
    lat = time.time() - s; maxlat = max(maxlat, lat); codes[c] = codes.get(c, 0) + 1
    ok = 200 <= c < 300
    if not ok and first_bad is None: first_bad = s - t0
    if ok and prev is not None and not prev: last_good = s - t0
    prev = ok
    time.sleep(max(0.0, iv - lat))
fmt = lambda v: "-" if v is None else f"{v:.2f}"
print(fmt(first_bad), fmt(last_good), f"{maxlat:.2f}", ",".join(f"{k}x{v}" for k, v in sorted(codes.items())), "last=" + ("ok" if prev else "bad"))
EOF
}
lt() { python3 -c "import sys; a=sys.argv[1]; sys.exit(0 if a!='-' and float(a) < float(sys.argv[2]) else 1)" "$1" "$2"; }

log "Redis stop/start: readiness flips and comes back"
poll "http://$B/health/ready" 12 0.1 GET >/tmp/$P-ready & pr=$!
poll "http://$B/api/v1/pipeline" 12 0.1 POST >/tmp/$P-post & pp=$!
sleep 2; docker stop -t 2 "$P-redis" >/dev/null; sleep 4; docker start "$P-redis" >/dev/null; wait $pr $pp
read -r bad_at good_at maxlat codes last </tmp/$P-ready; echo "  readiness: first 503 at ${bad_at}s, back at ${good_at}s, $codes"
read -r pbad pgood pmax pcodes plast </tmp/$P-post; echo "  POSTs during Redis outage: $pcodes, max latency ${pmax}s"
check "readiness 503 while Redis is stopped" test "$bad_at" != "-"
check "readiness back to 200 after Redis start" test "$last" = last=ok
check "POSTs keep succeeding (cache is best effort)" test "$pbad" = "-"

log "Postgres restart: fail fast, recover without restarting the app"
poll "http://$B/api/v1/pipeline" 16 0.05 POST >/tmp/$P-post & pp=$!
poll "http://$B/health/ready" 16 0.1 GET >/tmp/$P-ready & pr=$!
sleep 2; docker restart -t 5 "$P-pg1" >/dev/null; wait $pp $pr
read -r pbad pgood pmax pcodes plast </tmp/$P-post; echo "  POSTs: first failure ${pbad}s, recovered ${pgood}s, max latency ${pmax}s, $pcodes"
check "no request hung longer than 5 s" lt "$pmax" 5
check "POSTs succeed again after the restart" test "$plast" = last=ok
check "readiness 200 at the end" test "$(code "http://$B/health/ready")" = 200

log "hung primary + DNS failover: alias 'postgres' moves to another server"
poll "http://$B/api/v1/pipeline" 22 0.05 POST >/tmp/$P-post & pp=$!
poll "http://$B/health/ready" 22 0.1 GET >/tmp/$P-ready & pr=$!
sleep 2; docker pause "$P-pg1" >/dev/null; echo "  +2s pg1 paused (connections hang)"
sleep 4; docker network disconnect "$NET" "$P-pg1"; docker network connect --alias postgres "$NET" "$P-pg2"
echo "  +6s alias postgres moved to pg2"; wait $pp $pr
docker unpause "$P-pg1" >/dev/null
read -r pbad pgood pmax pcodes plast </tmp/$P-post; echo "  POSTs: first failure ${pbad}s, recovered ${pgood}s, max latency ${pmax}s, $pcodes"
read -r bad_at good_at maxlat codes last </tmp/$P-ready; echo "  readiness: first 503 at ${bad_at}s, back at ${good_at}s, $codes"
check "requests to the hung primary fail within 5 s" lt "$pmax" 5
check "POSTs succeed after the move" test "$plast" = last=ok
check "new rows land in pg2 (schema created there)" test "$(docker exec "$P-pg2" psql -U i2s -d i2s -Atc 'select count(*) from pipelines')" -gt 0
check "readiness 200 after the move" test "$(code "http://$B/health/ready")" = 200

log "throughput (CPU_COST_MS=0 via the admin endpoint, 1 CPU)"
code -XPUT "${AUTH[@]}" "http://$B/admin/faults" -d '{"cpu_cost_ms":0}' >/dev/null
echo '{"name":"bench","seq":1}' >/tmp/$P-body.json
if command -v ab >/dev/null; then
  ab -q -k -c 50 -n 5000 -p /tmp/$P-body.json -T application/json "http://$B/api/v1/pipeline" 2>/dev/null \
    | grep -E "Requests per second|Failed requests|Non-2xx|  50%|  99%" | sed 's/^/  /' | tee /tmp/$P-ab
  rps=$(awk '/Requests per second/ {print int($4)}' /tmp/$P-ab)
  check "POST throughput $rps req/s >= 200" test "${rps:-0}" -ge 200
else
  echo "  (ab not installed: skipped; apt-get install apache2-utils)"
fi
code -XDELETE "${AUTH[@]}" "http://$B/admin/faults" >/dev/null

log "secrets never logged"
check "no password or token in the logs" bash -c "! docker logs '$P-app' 2>&1 | grep -qE '$PGPASS|$MQPASS|$TOKEN'"

log "SIGTERM"
t=$(now); docker stop -t 15 "$P-app" >/dev/null; echo "  stopped in $(since "$t")s"
check "exit code 0" test "$(docker inspect -f '{{.State.ExitCode}}' "$P-app")" = 0
check "graceful shutdown logged" bash -c "docker logs '$P-app' 2>&1 | grep -q 'shutdown complete'"

printf '\n%d passed, %d failed\n' "$PASS" "$FAIL"
[[ $FAIL == 0 ]]
