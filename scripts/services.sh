#!/usr/bin/env bash
# Install (when missing) and start the databases the integration tests use:
# PostgreSQL and MariaDB from Debian's packages, each with a database `test`
# that root/postgres reach on 127.0.0.1 without a password. Idempotent: a
# second run finds everything installed and running and changes nothing.
# Needs root (apt-get); on a machine where the servers already run it only checks.
set -euo pipefail

log() { echo "services: $*"; }

need_packages=()
command -v pg_ctlcluster >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
  || need_packages+=(postgresql)
command -v mariadbd >/dev/null || need_packages+=(mariadb-server)
command -v prometheus >/dev/null || need_packages+=(prometheus)
command -v prometheus-pushgateway >/dev/null || need_packages+=(prometheus-pushgateway)
if ((${#need_packages[@]})) && [ "$(id -u)" != 0 ]; then
  # Without root nothing can be installed: say how, and let the tests skip
  # (or fail, under BEAMSTREAM_REQUIRE_SERVICES=1) with their own reasons.
  log "missing ${need_packages[*]}: run 'sudo make services' (as root) to install and start them"
  [ "${BEAMSTREAM_REQUIRE_SERVICES:-}" = 1 ] && exit 1
  exit 0
fi
if ((${#need_packages[@]})); then
  log "installing ${need_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d may forbid starting services from the package scripts; we start them below.
  apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

start_postgres() {
  local ver cluster
  ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
  cluster=main
  if ! pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1==v && $2==c' | grep -q .; then
    pg_createcluster "$ver" "$cluster" >/dev/null
  fi
  local hba="/etc/postgresql/$ver/$cluster/pg_hba.conf"
  if ! grep -q '^# beamstream test access' "$hba"; then
    # Trust on loopback only: a throwaway test server, as CI's service containers do.
    { echo '# beamstream test access'; echo 'host all all 127.0.0.1/32 trust';
      echo 'host all all ::1/128 trust'; cat "$hba"; } > "$hba.new"
    mv "$hba.new" "$hba"; chown postgres:postgres "$hba"
  fi
  if pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1==v && $2==c {print $4}' | grep -q online; then
    pg_ctlcluster "$ver" "$cluster" reload
  else
    pg_ctlcluster "$ver" "$cluster" start
  fi
  su postgres -c "psql -q -h 127.0.0.1 -tAc \"select 1 from pg_database where datname='test'\"" | grep -q 1 \
    || su postgres -c "createdb -h 127.0.0.1 test"
  log "PostgreSQL $ver up on 127.0.0.1:5432 (db test)"
}

start_mariadb() {
  if ! mariadb-admin --protocol=tcp -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    nohup mariadbd --user=mysql --bind-address=127.0.0.1 --port=3306 \
      >/var/log/beamstream-mariadb.log 2>&1 &
    for _ in $(seq 1 60); do
      mariadb-admin --protocol=tcp -h 127.0.0.1 -uroot ping >/dev/null 2>&1 && break
      sleep 0.5
    done
  fi
  # root over TCP with an empty password (Debian's root uses unix_socket auth by default).
  mariadb -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS test;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
FLUSH PRIVILEGES;
SQL
  mariadb-admin --protocol=tcp -h 127.0.0.1 -uroot ping >/dev/null
  log "MariaDB up on 127.0.0.1:3306 (db test)"
}

if [ "$(id -u)" != 0 ]; then
  log "not root: PostgreSQL and MariaDB are used as they are (start them yourself, or 'sudo make services')"
  exit 0
fi
start_postgres
start_mariadb
