#!/bin/sh
# Creates the files docker-compose.yml mounts as secrets, in ${SECRETS_DIR:-./secrets} (git- and
# docker-ignored): random ones for the token key, the two database passwords, the operator page's
# token and the change feed's bearer token, the database URL that carries the application role's
# password, and the emulator's OAuth client secret (replace that file with your real client secret
# for Gmail). An existing file is never overwritten, so
# running it again is safe; delete a file to regenerate it.
#
# The directory is 0700 (other host users stay out); the files are 0644 because compose bind-mounts
# them as they are and the containers read them as their own users (node, postgres).
set -eu
dir=${SECRETS_DIR:-./secrets}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

put() { # name value
  if [ -e "$dir/$1" ]; then
    echo "kept    $dir/$1"
  else
    printf '%s\n' "$2" > "$dir/$1"
    chmod 644 "$dir/$1"
    echo "created $dir/$1"
  fi
}

put token_encryption_key "$(openssl rand -base64 32)"
put postgres_password "$(openssl rand -hex 24)"
put postgres_app_password "$(openssl rand -hex 24)"
# Built from the file just made (or kept), so the URL and the role's password always agree.
put database_url "postgres://gmail_sync:$(cat "$dir/postgres_app_password")@postgres:5432/gmail_sync"
put google_client_secret "GOCSPX-gmail-sync-emulator"
# The operator page (/operator/*, Authorization: Bearer or the login form's password) and the
# change feed's consumers (GET /changes) get tokens of their own, so either can be rotated alone.
put operator_token "$(openssl rand -base64 32)"
put changes_api_token "$(openssl rand -hex 32)"
