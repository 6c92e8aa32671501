#!/usr/bin/env bash
# `sam local ...` that can reach only the local moto, whatever credentials the shell holds:
#
#   scripts/sam-local.sh invoke OrdersApiFunction -e events/orders-api/place-order.json
#
# - The functions' AWS_ENDPOINT_URL comes from events/sam-local-env.json (added to the arguments
#   unless they name another --env-vars file); template.yaml declares the variable, without which
#   SAM CLI would not pass it on.
# - SAM CLI gives a function the credentials and region of its own boto3 session, never those of
#   --env-vars (Lambda reserves the names, so the template cannot declare them). Here that session
#   has dummy credentials, no session token, no profile and us-east-1, as the tests use moto.
# - SAM CLI's own AWS calls (it asks STS for the account id) go to the moto on the host too.
# scripts/checks/sam_local_env.py runs SAM CLI's environment resolution through this script for
# every function of the template (`make sam-local-check`).
set -euo pipefail
cd "$(dirname "$0")/.."

args=("$@")
case " $* " in
  *" --env-vars "* | *" -n "* | *" --env-vars="*) ;;
  *) [[ ${1:-} == invoke || ${1:-} == start-api || ${1:-} == start-lambda ]] && args+=(--env-vars events/sam-local-env.json) ;;
esac

exec env \
  -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_SESSION_TOKEN -u AWS_SECURITY_TOKEN \
  -u AWS_CREDENTIAL_EXPIRATION -u AWS_WEB_IDENTITY_TOKEN_FILE -u AWS_ROLE_ARN \
  -u AWS_CONTAINER_CREDENTIALS_FULL_URI -u AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
  AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_MAX_ATTEMPTS=1 \
  "${SAM:-sam}" local "${args[@]}"
