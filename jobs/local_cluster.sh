#!/usr/bin/env bash
# A real one-node SLURM cluster on 127.0.0.1, with accounting, for the `slurm` tests and for trying
# `make reproduce-<paper> LAUNCHER=slurm` without a site. Needs Debian's slurm-wlm munge slurmdbd
# mariadb-server (.ci/run installs them) and root.
#
#   jobs/local_cluster.sh start    # prints the SLURM_CONF to export; idempotent
#   jobs/local_cluster.sh stop     # stops every daemon it started, by PID
#   jobs/local_cluster.sh status
#
# Accounting (slurmdbd + MariaDB) is not optional: without `sacct`, submitit cannot tell that a job
# crashed and waits for ever. Every daemon runs on its own ports and state dir under $SLURM_LOCAL_DIR,
# so a site's slurm.conf or a system MariaDB is never touched.
set -euo pipefail

D=${SLURM_LOCAL_DIR:-/tmp/mlsys-slurm}
CLUSTER=mlsyslocal
DB_PORT=${SLURM_LOCAL_DB_PORT:-13306}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-16817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-16818}
DBD_PORT=${SLURM_LOCAL_DBD_PORT:-16819}
DB_PASS=local-cluster-only
# The node claims to be a MareNostrum 5 accelerated node (80 cores, 512 GB, 4 GPUs; slurmd's
# config_overrides) so that `sbatch --test-only` judges the gpu1/gpu4 job scripts at their real sizes.
# Jobs that run go to the default `debug` partition, capped at this machine's real cores and memory;
# the `gpu` partition is for --test-only (its GPUs are /dev/null stand-ins).
NODE_CPUS=80 NODE_MEM_MB=512000 NODE_GPUS=4
MUNGE_SOCK=/run/munge/munge.socket.2  # slurm's persistent connections use the default socket
export SLURM_CONF=$D/etc/slurm.conf

die() { echo "local_cluster: $*" >&2; exit 2; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "local_cluster: $what did not come up in ${secs}s; logs in $D/log" >&2
  tail -n 20 "$D"/log/*.log >&2 || true
  exit 1
}

write_configs() {
  local mem_mb
  mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p "$D"/{etc,log,state,spool,munge,run,mysql-run}
  chmod 755 "$D"  # munge and mysql must reach their folders (mktemp -d makes 0700)
  cat > "$D/etc/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MailProg=/bin/true
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=3600
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStorageEnforce=associations
GresTypes=gpu
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$NODE_CPUS Boards=1 SocketsPerBoard=2 CoresPerSocket=$((NODE_CPUS / 2)) ThreadsPerCore=1 RealMemory=$NODE_MEM_MB Gres=gpu:$NODE_GPUS State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO MaxCPUsPerNode=$(nproc) MaxMemPerNode=$mem_mb
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  # slurmd drops a GPU without device files: give it /dev/null-like ones (SLURM only stats them)
  mkdir -p "$D/dev"
  for i in $(seq 0 $((NODE_GPUS - 1))); do [ -c "$D/dev/gpu$i" ] || mknod "$D/dev/gpu$i" c 1 3; done
  echo "NodeName=localhost Name=gpu File=$D/dev/gpu[0-$((NODE_GPUS - 1))]" > "$D/etc/gres.conf"
  cat > "$D/etc/site.yaml" <<EOF
# jobs/render.py site values for this local cluster (export JOBS_SITE=$D/etc/site.yaml)
partition: {cpu: debug, gpu1: gpu, gpu4: gpu}
EOF
  cat > "$D/etc/slurmdbd.conf" <<EOF
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
AuthType=auth/munge
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$D/etc/slurmdbd.conf"
  rm -f "$D/etc/cgroup.conf"  # none: with it, slurmd 22.05 insists on a cgroup plugin
}

start_munge() {
  pid_alive "$D/run/munged.pid" && return 0
  if [ -S "$MUNGE_SOCK" ] && munge -n -S "$MUNGE_SOCK" >/dev/null 2>&1; then
    return 0  # a munged already serves this host: use it, and leave it alone on stop
  fi
  [ -f /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key \
    bs=1024 count=1 status=none; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  mkdir -p /run/munge
  chown munge:munge "$D/munge" /run/munge
  runuser -u munge -- munged --socket="$MUNGE_SOCK" --pid-file="$D/munge/munged.pid" \
    --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed"
  wait_for 10 munged test -S "$MUNGE_SOCK"
  cp "$D/munge/munged.pid" "$D/run/munged.pid"
}

start_mariadb() {
  pid_alive "$D/run/mariadbd.pid" && return 0
  if [ ! -d "$D/mysql/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$D/mysql" --auth-root-authentication-method=socket \
      --skip-test-db > "$D/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $D/log)"
  fi
  chown -R mysql:mysql "$D/mysql" "$D/mysql-run"
  mariadbd --user=mysql --datadir="$D/mysql" --socket="$D/mysql-run/mysqld.sock" \
    --pid-file="$D/mysql-run/mariadbd.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --log-error="$D/log/mariadb.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
  echo $! > "$D/run/mariadbd.pid"
  wait_for 30 mariadb mariadb --socket="$D/mysql-run/mysqld.sock" -e "select 1"
  mariadb --socket="$D/mysql-run/mysqld.sock" <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
}

start_slurm() {
  if ! pid_alive "$D/run/slurmdbd.pid"; then
    slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
    wait_for 30 slurmdbd bash -c "exec 3<>/dev/tcp/127.0.0.1/$DBD_PORT"
  fi
  # the cluster and an account for root must exist before slurmctld enforces associations
  sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
  sacctmgr -i add account local Cluster="$CLUSTER" Description=local Organization=local >/dev/null 2>&1 || true
  sacctmgr -i add user root Account=local Cluster="$CLUSTER" >/dev/null 2>&1 || true
  if ! pid_alive "$D/run/slurmctld.pid"; then
    slurmctld -f "$SLURM_CONF"
    wait_for 30 slurmctld scontrol ping
  fi
  if ! pid_alive "$D/run/slurmd.pid"; then
    slurmd -f "$SLURM_CONF" -N localhost
  fi
  # a drain left in the saved state by an earlier configuration outlives a restart: lift it
  wait_for 30 "slurmd registration" bash -c "sinfo -h -o %t | grep -qvE '[*~#]|^(unk|down)'"
  if sinfo -h -o %t | grep -q '^drain'; then scontrol update NodeName=localhost State=RESUME; fi
  wait_for 30 "an idle node" bash -c "sinfo -h -o %t | grep -qE '^(idle|mix|alloc)$'"
}

stop_all() {
  local f pid
  for f in slurmd slurmctld slurmdbd mariadbd munged; do
    [ -f "$D/run/$f.pid" ] || continue
    pid=$(cat "$D/run/$f.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$D/run/$f.pid"
  done
  echo "local_cluster: stopped"
}

case "${1:-}" in
  start)
    [ "$(id -u)" = 0 ] || die "must run as root (it starts munged, mariadbd and the slurm daemons)"
    for b in slurmctld slurmd slurmdbd munged mariadbd sacct sacctmgr; do
      command -v "$b" >/dev/null || die "$b not found: apt-get install slurm-wlm munge slurmdbd mariadb-server"
    done
    write_configs
    start_munge
    start_mariadb
    start_slurm
    echo "local_cluster: up ($(sinfo -h -o '%P %D %t %c cpus'))"
    echo "export SLURM_CONF=$SLURM_CONF JOBS_SITE=$D/etc/site.yaml"
    ;;
  stop) stop_all ;;
  status)
    for f in munged mariadbd slurmdbd slurmctld slurmd; do
      if pid_alive "$D/run/$f.pid"; then echo "$f: running ($(cat "$D/run/$f.pid"))"; else echo "$f: stopped"; fi
    done
    ;;
  *) die "usage: $0 start|stop|status" ;;
esac
