#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for tests and checks:
#   scripts/cluster.sh up     build (once per release), start, wait; prints the kubeconfig path
#   scripts/cluster.sh env    prints KUBECONFIG=<path> of the running cluster
#   scripts/cluster.sh down   stops every process it started
#   scripts/cluster.sh build  only builds the binaries
#   scripts/cluster.sh apiserver PORT
#                             a second API server of the running cluster, in the foreground
#   scripts/cluster.sh import IMAGE...  moves Docker images into the node's containerd
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler are built from
# the Kubernetes project's own Go modules at the release pinned in
# scripts/cluster/go.mod, cached in ~/.cache/berth/kubernetes-<version>/.
# Everything listens on 127.0.0.1 with TLS from a CA made here; RBAC is on and
# Pod Security admission enforces `restricted` in every namespace but kube-system.
# Progress goes to stderr; the one stdout line of `up` is the kubeconfig path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module="$root/scripts/cluster"
version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$module/go.mod")"
[ -n "$version" ] || { echo "cluster: no k8s.io/kubernetes version in $module/go.mod" >&2; exit 1; }
bin="${BERTH_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}/kubernetes-$version"
state="${BERTH_CLUSTER_DIR:-${TMPDIR:-/tmp}/berth-cluster}"
api_port="${BERTH_CLUSTER_API_PORT:-16443}"
etcd_port="${BERTH_CLUSTER_ETCD_PORT:-12379}"
wait_seconds="${BERTH_CLUSTER_WAIT_SECONDS:-120}"
# The node: a kubelet of the same release on a containerd of its own, pods on a
# CNI bridge in network namespaces this script's containerd makes.
# BERTH_CLUSTER_NODES=0 starts the control plane alone.
nodes="${BERTH_CLUSTER_NODES:-1}"
node_name=berth-node
pod_cidr=10.244.0.0/24
node_ip=10.244.0.1
bridge=berth-br0
# The `kubernetes` Service's ClusterIP: with no kube-proxy, socat relays it to the API server.
api_service_ip=10.96.0.1
components=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet socat)

say() { echo "cluster: $*" >&2; }

build() {
  local binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet pause)
  local missing=0 b
  for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || missing=1; done
  [ "$missing" = 1 ] || return 0
  command -v go >/dev/null 2>&1 || { say "go is not installed; it builds the control plane"; return 1; }
  mkdir -p "$bin"
  exec 8>"$bin/.lock"
  flock 8
  missing=0
  for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || missing=1; done
  [ "$missing" = 1 ] || return 0
  say "building Kubernetes $version into $bin (cold: about 15 minutes on 2 cores)"
  local start=$SECONDS minor tmp pkg=k8s.io/component-base/version cgo=k8s.io/client-go/pkg/version
  minor="$(echo "$version" | cut -d. -f2)"
  tmp="$(mktemp -d "$bin/.build.XXXXXX")"
  # The version stamps make the binaries report the release they are built from,
  # as a release build does (the emulation and compatibility versions derive from it).
  local ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  ldflags+=" -X $cgo.gitVersion=$version -X $cgo.gitMajor=1 -X $cgo.gitMinor=$minor -X $cgo.gitTreeState=clean"
  (cd "$module" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet go.etcd.io/etcd/server/v3) >&2
  (cd "$module" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w" -o "$tmp/pause" ./pause) >&2
  mv "$tmp/server" "$tmp/etcd"
  for b in "${binaries[@]}"; do mv "$tmp/$b" "$bin/$b"; done
  rm -rf "$tmp"
  say "built in $((SECONDS - start)) s"
}

# --- certificates -----------------------------------------------------------

# cert NAME SUBJECT [SAN]: a key and a certificate signed by the cluster CA.
cert() {
  local name="$1" subject="$2" san="${3:-}" ext
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$state/pki/$name.key" 2>/dev/null
  openssl req -new -key "$state/pki/$name.key" -subj "$subject" -out "$state/pki/$name.csr" 2>/dev/null
  ext="$state/pki/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"; else echo "extendedKeyUsage=clientAuth"; fi
  } >"$ext"
  openssl x509 -req -in "$state/pki/$name.csr" -CA "$state/pki/ca.crt" -CAkey "$state/pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$ext" -out "$state/pki/$name.crt" 2>/dev/null
  rm -f "$state/pki/$name.csr" "$ext"
}

pki() {
  [ -f "$state/pki/admin.crt" ] && return 0
  mkdir -p "$state/pki"
  chmod 700 "$state/pki"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$state/pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$state/pki/ca.key" -subj "/CN=berth-test-ca" -days 30 -out "$state/pki/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  cert etcd "/CN=etcd" "IP:127.0.0.1,DNS:localhost"
  cert apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-etcd "/CN=kube-apiserver-etcd-client"
  cert apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert admin "/O=system:masters/CN=berth-admin"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kubelet "/O=system:nodes/CN=system:node:$node_name" "IP:$node_ip,IP:127.0.0.1,DNS:$node_name"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$state/pki/sa.key" 2>/dev/null
  openssl pkey -in "$state/pki/sa.key" -pubout -out "$state/pki/sa.pub" 2>/dev/null
}

# kubeconfig NAME: a kubeconfig for the client certificate NAME.
kubeconfig() {
  local name="$1"
  cat >"$state/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: berth-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $state/pki/ca.crt
users:
- name: $name
  user:
    client-certificate: $state/pki/$name.crt
    client-key: $state/pki/$name.key
contexts:
- name: berth-test
  context: { cluster: berth-test, user: $name }
current-context: berth-test
EOF
}

# --- processes --------------------------------------------------------------

running() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

start() {
  local name="$1"
  shift
  running "$name" && return 0
  local exe="$bin/$name"
  [ -x "$exe" ] || exe="$(command -v "$name")"
  # A session of its own: signals to the caller's process group (a timeout, Ctrl-C) do not reach it.
  setsid nohup "$exe" "$@" >"$state/$name.log" 2>&1 &
  echo $! >"$state/$name.pid"
}

# api PATH: a GET as the admin; fails unless the answer is 2xx.
api() { curl -fsS --max-time 5 --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" "https://127.0.0.1:$api_port$1" >/dev/null 2>&1; }
ready() { api /readyz; }

# wait_for WHAT COMMAND...: runs COMMAND until it succeeds or the deadline passes.
wait_for() {
  local what="$1" deadline=$((SECONDS + wait_seconds))
  shift
  while [ $SECONDS -lt "$deadline" ]; do
    "$@" && return 0
    for c in "${components[@]}"; do
      if [ -f "$state/$c.pid" ] && ! running "$c"; then
        say "$c exited while waiting for $what; its log ends with:"
        tail -n 30 "$state/$c.log" >&2
        return 1
      fi
    done
    sleep 0.5
  done
  say "$what did not happen within ${wait_seconds} s"
  return 1
}

# apiserver_flags PORT: sets `flags` to the API server's flags, listening on
# PORT. One list for the cluster's own and for `apiserver`'s second one.
# --endpoint-reconciler-type none: the API server's own Endpoints would name a
# loopback address, which the API refuses; pods dial the kubernetes Service through a relay (start_node).
apiserver_flags() {
  local pki="$state/pki"
  flags=(--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$1" \
    --etcd-servers "https://127.0.0.1:$etcd_port" --etcd-cafile "$pki/ca.crt" \
    --etcd-certfile "$pki/apiserver-etcd.crt" --etcd-keyfile "$pki/apiserver-etcd.key" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" --client-ca-file "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/apiserver-kubelet.crt" --kubelet-client-key "$pki/apiserver-kubelet.key" \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --authorization-mode Node,RBAC --anonymous-auth=false \
    --admission-control-config-file "$state/admission.yaml" --endpoint-reconciler-type none \
    --profiling=false --watch-cache=true)
}

up() {
  build
  # Left from a run whose processes are gone (a reboot, a killed session): start clean.
  if [ -d "$state" ] && ! running kube-apiserver; then down; fi
  mkdir -p "$state"
  pki
  kubeconfig admin
  kubeconfig controller-manager
  kubeconfig scheduler
  cat >"$state/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: { enforce: restricted, enforce-version: latest, audit: restricted, warn: restricted }
    exemptions: { namespaces: [kube-system] }
EOF
  local pki="$state/pki"
  start etcd --name berth-test --data-dir "$state/etcd" \
    --listen-client-urls "https://127.0.0.1:$etcd_port" --advertise-client-urls "https://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-cluster "berth-test=http://127.0.0.1:$((etcd_port + 1))" \
    --cert-file "$pki/etcd.crt" --key-file "$pki/etcd.key" --client-cert-auth --trusted-ca-file "$pki/ca.crt" \
    --listen-metrics-urls "http://127.0.0.1:$((etcd_port + 2))" --log-level warn
  local flags
  apiserver_flags "$api_port"
  start kube-apiserver "${flags[@]}"
  wait_for "the API server to answer" ready
  start kube-controller-manager --kubeconfig "$state/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$state/controller-manager.kubeconfig" --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$((api_port + 1))" --cert-dir "$state/controller-manager" \
    --use-service-account-credentials --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" --leader-elect=false \
    --profiling=false
  start kube-scheduler --kubeconfig "$state/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/scheduler.kubeconfig" --authorization-kubeconfig "$state/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$((api_port + 2))" --cert-dir "$state/scheduler" --leader-elect=false \
    --profiling=false
  wait_for "the controllers to start" controllers_started
  if [ "$nodes" != 0 ]; then start_node; fi
  say "up: Kubernetes $version on https://127.0.0.1:$api_port (logs in $state)"
  echo "$state/admin.kubeconfig"
}

# The default ServiceAccount appears once the controller manager's token and
# service-account controllers run: a namespace is then usable for pods.
controllers_started() { api /api/v1/namespaces/default/serviceaccounts/default; }

# --- the node ---------------------------------------------------------------

node_packages() {
  # kubectl is not the node's, but the tests' (kubectl apply -k, --dry-run=server): installed with the rest.
  if command -v containerd >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && [ -x /usr/lib/cni/bridge ] && command -v socat >/dev/null 2>&1 && command -v kubectl >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "a node needs containerd, runc, containernetworking-plugins and socat, the tests kubectl (root and apt-get install them)"
    return 1
  fi
  say "installing containerd, runc, containernetworking-plugins, socat and kubectl"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc containernetworking-plugins socat kubectl) >&2
}

# image NAME ROOTFS-TAR [CHANGE...]: a `docker import` of a root filesystem,
# moved into the node's containerd (no registry anywhere).
image() {
  local name="$1" tar="$2" c
  shift 2
  local changes=()
  for c in "$@"; do changes+=(--change "$c"); done
  docker import "${changes[@]}" "$tar" "$name" >/dev/null
  to_node "$name"
}

# to_node NAME: a Docker image moved into the node's containerd, under the same name.
to_node() { docker save "$1" | ctr -a "$state/containerd.sock" -n k8s.io images import - >/dev/null; }

# berth.test/everything:local: server-everything serving streamable HTTP on
# port 3001 at /mcp (args `sse`: SSE at /sse), on docker-images.sh's base
# (node and its libraries only). It stops on SIGINT: node as PID 1 ignores the
# SIGTERM a pod gets, so every deleted pod would wait out its grace period.
everything_image() {
  local base ctx
  . "$root/scripts/toolchain.sh" >&2
  base="$(bash "$root/scripts/docker-images.sh" base | sed -n 's/^BASE_IMAGE=//p')"
  ctx="$(mktemp -d)"
  (cd "$root" && node scripts/cluster/package-closure.ts @modelcontextprotocol/server-everything | tar -cf - -T - | tar -C "$ctx" -xf -)
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $base
COPY node_modules /app/node_modules
USER 10001
ENV PORT=3001
EXPOSE 3001
STOPSIGNAL SIGINT
ENTRYPOINT ["node", "/app/node_modules/@modelcontextprotocol/server-everything/dist/index.js"]
CMD ["streamableHttp"]
DOCKERFILE
  docker build -q -t berth.test/everything:local "$ctx" >/dev/null
  rm -rf "$ctx"
  to_node berth.test/everything:local
}

start_node() {
  node_packages
  bash "$root/scripts/docker-daemon.sh"
  # The pods' bridge, made before the kubelet starts: its address is the node's.
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "$node_ip/24" dev "$bridge"
  fi
  ip link set "$bridge" up
  # In-cluster clients (berth itself from deploy/) dial the `kubernetes` Service, as in any
  # cluster: its ClusterIP lives on the bridge and socat relays it to the API server on
  # loopback (the serving certificate names that IP). Pods reach it by their default route.
  # socat listens with a backlog of 5 unless told: berth's self-check opens 30 connections at once.
  ip addr add "$api_service_ip/32" dev "$bridge" 2>/dev/null || true
  # Bridged frames pass the host's iptables (br_netfilter), whose FORWARD policy Docker sets
  # to DROP: without this rule no pod reaches another (berth in a pod, its servers' pods).
  if ! iptables -C FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null; then iptables -I FORWARD -i "$bridge" -o "$bridge" -j ACCEPT; fi
  start socat "TCP-LISTEN:443,bind=$api_service_ip,fork,reuseaddr,backlog=128" "TCP:127.0.0.1:$api_port"
  mkdir -p "$state/cni" "$state/kubelet"
  cat >"$state/cni/10-berth.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "berth-test",
  "plugins": [
    { "type": "bridge", "bridge": "$bridge", "isGateway": true, "isDefaultGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "dataDir": "$state/cni/ipam", "ranges": [[{ "subnet": "$pod_cidr", "gateway": "$node_ip" }]] } }
  ]
}
JSON
  cat >"$state/containerd.toml" <<TOML
version = 2
root = "$state/containerd/root"
state = "$state/containerd/state"
[grpc]
  address = "$state/containerd.sock"
[ttrpc]
  address = "$state/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "berth.test/pause:local"
  # Inside a container root may not lower oom_score_adj; without this runc fails every sandbox.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni"
TOML
  start containerd --config "$state/containerd.toml"
  wait_for "containerd to answer" containerd_answers
  local rootfs
  rootfs="$(mktemp -d)"
  cp "$bin/pause" "$rootfs/pause"
  tar -C "$rootfs" --owner=0 --group=0 -cf "$state/pause.tar" pause
  rm -rf "$rootfs"
  image berth.test/pause:local "$state/pause.tar" 'ENTRYPOINT ["/pause"]' 'USER 65535:65535'
  everything_image
  kubeconfig kubelet
  local pki="$state/pki"
  cat >"$state/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $((api_port + 3))
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $((api_port + 4))
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $pki/ca.crt }
authorization: { mode: Webhook }
containerRuntimeEndpoint: unix://$state/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
evictionHard: { memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1% }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
YAML
  start kubelet --config "$state/kubelet.yaml" --kubeconfig "$state/kubelet.kubeconfig" --root-dir "$state/kubelet" \
    --hostname-override "$node_name" --node-ip "$node_ip"
  wait_for "the node to be Ready" node_ready
}

containerd_answers() { ctr -a "$state/containerd.sock" version >/dev/null 2>&1; }

node_ready() {
  curl -fsS --max-time 5 --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
    "https://127.0.0.1:$api_port/api/v1/nodes/$node_name" 2>/dev/null | tr -d ' \n' | grep -q '"type":"Ready","status":"True"'
}

down() {
  local c pid
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    c="${components[$i]}"
    running "$c" || { rm -f "$state/$c.pid"; continue; }
    pid="$(cat "$state/$c.pid")"
    # The pods' processes outlive containerd: killed first, while it can still name them.
    if [ "$c" = containerd ]; then
      for task in $(ctr -a "$state/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr -a "$state/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
      done
    fi
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    rm -f "$state/$c.pid"
  done
  # Each pod's shim, started by this containerd, names its socket.
  for pid in $(pgrep -f -- "-address $state/containerd.sock" || true); do kill -9 "$pid" 2>/dev/null || true; done
  iptables -D FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null || true
  if ip link show "$bridge" >/dev/null 2>&1; then ip link delete "$bridge"; fi
  # The kubelet's and containerd's mounts (pod volumes, rootfs snapshots) go before their folders.
  grep -o " $state/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$state"
  say "down"
}

# A second kube-apiserver of the running cluster on PORT (same etcd, certificates
# and flags), in the foreground: a test starts, kills and starts it again to see
# berth through an API server restart without restarting the one every other
# test and helper uses. Its log goes to stderr.
second_apiserver() {
  local port="${1:-}" flags
  [[ "$port" =~ ^[0-9]+$ ]] || { echo "usage: scripts/cluster.sh apiserver PORT" >&2; exit 2; }
  running kube-apiserver || { say "not running; run scripts/cluster.sh up"; exit 1; }
  apiserver_flags "$port"
  exec "$bin/kube-apiserver" "${flags[@]}"
}

case "${1:-}" in
  up) up ;;
  apiserver) second_apiserver "${2:-}" ;;
  down) down ;;
  build) build ;;
  import)
    shift
    running containerd || { say "no node is running; run scripts/cluster.sh up"; exit 1; }
    for name in "$@"; do to_node "$name"; done
    ;;
  env)
    running kube-apiserver || { say "not running; run scripts/cluster.sh up"; exit 1; }
    echo "KUBECONFIG=$state/admin.kubeconfig"
    ;;
  *)
    echo "usage: scripts/cluster.sh up|down|env|build|apiserver PORT|import IMAGE..." >&2
    exit 2
    ;;
esac
