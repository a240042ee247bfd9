#!/usr/bin/env bash
# Makes the secrets deploy/compose.yaml mounts, in DIR (default: the
# folder secrets/ beside this script), each owned by the one user (uid)
# that reads it and readable by it alone: compose bind-mounts a file secret
# as it is on the host. Creates only what is missing, so it is safe to run
# again; to rotate one, see README ("Containers and Kubernetes").
#
#   file                      owner   read by
#   postgres-password         999     postgres: the superuser's, on first start
#   oshal-app-password        999     postgres: the role oshal_app's, on first start
#   pgpass-admin              65532   db-setup: postgres's password (PGPASSFILE)
#   pgpass-app                65532   controller: oshal_app's password (PGPASSFILE)
#   api-token                 65532   controller: the API's operator token
#   vault-token               65532   controller: its OpenBao token
#   openbao-controller-token  65533   openbao: the same token, made on first start
#   openbao-admin-token       65533   openbao: the operator's token, made on first start
#   openbao-unseal-key        65533   openbao: its 32-byte static unseal key
set -euo pipefail
dir=${1:-"$(cd "$(dirname "$0")" && pwd)/secrets"}
umask 077
mkdir -p "$dir"
chmod 0755 "$dir"

# put NAME UID MODE: writes standard input to DIR/NAME unless it exists.
put() {
  local file="$dir/$1"
  if [ -e "$file" ]; then cat >/dev/null; return; fi
  cat >"$file.tmp"
  chown "$2:$2" "$file.tmp"
  chmod "$3" "$file.tmp"
  mv "$file.tmp" "$file"
  echo "secrets.sh: made $file" >&2
}
# A random password: 32 letters and digits (no character SQL or pgpass escapes).
random() {
  local s
  s=$(head -c 1024 /dev/urandom | tr -dc 'A-Za-z0-9')
  printf '%s' "${s:0:32}"
}
# The value of secret NAME (made before).
value() { cat "$dir/$1"; }

random | put postgres-password 999 0400
random | put oshal-app-password 999 0400
printf '*:*:*:postgres:%s\n' "$(value postgres-password)" | put pgpass-admin 65532 0600
printf '*:*:*:oshal_app:%s\n' "$(value oshal-app-password)" | put pgpass-app 65532 0600
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' | put api-token 65532 0400
printf 'oshal-%s' "$(random)" | put vault-token 65532 0400
value vault-token | put openbao-controller-token 65533 0400
printf 'oshal-admin-%s' "$(random)" | put openbao-admin-token 65533 0400
head -c 32 /dev/urandom | put openbao-unseal-key 65533 0400
