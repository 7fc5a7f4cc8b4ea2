#!/usr/bin/env bash
# Install the engines beamstream is tested on, once per machine, into
# ${BEAMSTREAM_ENGINES_DIR:-~/.cache/beamstream/engines}:
#   kafka  Apache Kafka 4.4.0 broker (KRaft) from Maven Central -> kafka/4.4.0/libs/*.jar
#   prism  Beam's Prism runner v2.77.0 from Beam's Go module    -> prism/v2.77.0/prism
#   flink  Beam's Flink job server jar from Maven Central       -> flink/<jar> (when served)
# Idempotent: what is already there is kept. `scripts/engines.sh [kafka|prism|flink]...`
# installs some; no argument installs all. A component that cannot be had is
# reported and skipped (exit 0), so the tests that need it say why they skip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${BEAMSTREAM_ENGINES_DIR:-$HOME/.cache/beamstream/engines}
kafka_version=4.4.0
beam_version=${BEAM_VERSION:-2.77.0}
mkdir -p "$root"
log() { echo "engines: $*"; }

install_kafka() {
  local dest="$root/kafka/$kafka_version"
  if [ -f "$dest/.complete" ]; then log "Apache Kafka $kafka_version: $dest/libs"; return; fi
  command -v mvn >/dev/null || { log "Apache Kafka: no mvn on PATH, skipped (tests fall back to Tansu)"; return; }
  rm -rf "$dest"; mkdir -p "$dest"
  mvn -q -B -f "$here/engines/kafka-broker.pom.xml" dependency:copy-dependencies \
    -Dkafka.version="$kafka_version" -DoutputDirectory="$dest/libs" -DincludeScope=runtime
  touch "$dest/.complete"
  log "Apache Kafka $kafka_version: $dest/libs ($(ls "$dest/libs" | wc -l) jars)"
}

install_prism() {
  local dest="$root/prism/v$beam_version"
  if [ -x "$dest/prism" ]; then log "Prism v$beam_version: $dest/prism"; return; fi
  command -v go >/dev/null || { log "Prism: no go on PATH, skipped"; return; }
  mkdir -p "$dest"
  GOBIN="$dest" GOFLAGS=-mod=mod go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$beam_version"
  log "Prism v$beam_version: $dest/prism"
}

install_flink() {
  # Beam's Flink job server is one shaded jar per Flink version. Maven Central
  # as reached here has served none of them (tried 2.0/1.20/1.19 at 2.72-2.77):
  # try the versions Beam's Python SDK accepts, newest first.
  local dest="$root/flink"
  mkdir -p "$dest"
  if ls "$dest"/beam-runners-flink-*-job-server-*.jar >/dev/null 2>&1; then
    log "Flink job server: $(ls "$dest"/beam-runners-flink-*-job-server-*.jar | head -1)"; return
  fi
  command -v mvn >/dev/null || { log "Flink job server: no mvn on PATH, skipped"; return; }
  # The matching release for every Flink version first, then the nearest
  # older releases of the newest Flink line a public index lists.
  local candidates=() flink v
  for flink in 2.0 1.20 1.19; do candidates+=("$flink:$beam_version"); done
  for v in 2.76.0 2.75.0 2.74.0 2.73.0 2.72.0; do candidates+=("2.0:$v"); done
  for c in "${candidates[@]}"; do
    flink=${c%%:*} v=${c#*:}
    if mvn -q -B dependency:copy -Dtransitive=false -DoutputDirectory="$dest" \
        -Dartifact="org.apache.beam:beam-runners-flink-$flink-job-server:$v" >/dev/null 2>&1; then
      log "Flink job server: $dest/beam-runners-flink-$flink-job-server-$v.jar"; return
    fi
  done
  log "Flink job server: not served by the Maven registry reached here (tried ${candidates[*]}); Flink is not run here"
}

components=("$@")
((${#components[@]})) || components=(kafka prism flink)
for c in "${components[@]}"; do
  case "$c" in
    kafka) install_kafka ;;
    prism) install_prism ;;
    flink) install_flink ;;
    *) echo "engines: unknown component $c (kafka, prism, flink)" >&2; exit 2 ;;
  esac
done
