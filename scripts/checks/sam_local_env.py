#!/usr/bin/env python3
"""`sam local invoke` reaches the local moto and never real AWS, checked with SAM CLI's own code.

SAM CLI builds a function's environment in samcli.local.lambdafn.env_vars.EnvironmentVariables
(made by LocalLambdaRunner._make_env_vars): the AWS_* credentials and region of its boto3 session
first, then, for each variable the template DECLARES, the template value, overridden by the shell
and then by the --env-vars file. A variable the template does not declare is never passed, which
is why template.yaml declares AWS_ENDPOINT_URL (as AWS::NoValue: absent once deployed).

This runs the real `sam local invoke` command (SAM CLI's click command, template reading,
--env-vars file, boto3 session) for every function of template.yaml, with the container runtime
replaced by a recorder of the environment the container would get, for a developer whose shell
holds real-looking credentials (in the environment, or as a named profile):

- plain `sam local invoke ... --env-vars events/sam-local-env.json`: every function's
  AWS_ENDPOINT_URL is the local moto and every URL it is given is local. (Its credentials are the
  developer's: SAM takes them from its session, and Lambda reserves the names, so the template
  cannot declare them; the requests still go only to moto.)
- `scripts/sam-local.sh invoke ...`: the same, and the credentials are dummy ones, with no session
  token, in us-east-1.
- a copy of the template without the declaration: the endpoint is not passed (what was wrong).
- scripts/template-binaries.py (what `make build` builds) lists the binaries SAM CLI reads.

Run with the SAM CLI virtualenv: `make sam-local-check`. No Docker, no network.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = "events/sam-local-env.json"
LOCAL_ENDPOINT = "http://host.docker.internal:5000"
LOCAL_HOSTS = {"host.docker.internal", "127.0.0.1", "localhost"}
DUMMY = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
MARK = "SAM-CHECK-ENV "
# AWS's documentation example keys: what a developer's real ones look like.
DEVELOPER_KEY = "AKIAIOSFODNN7EXAMPLE"
DEVELOPER_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def as_sam(argv: list[str]) -> None:
    """Stands in for the `sam` executable: `sam local invoke [options]` once per function of
    SAM_CHECK_INVOCATIONS, through SAM CLI's own command, recording each container's environment
    instead of starting it."""
    from samcli.cli.main import cli
    from samcli.commands.local.cli_common.invoke_context import InvokeContext

    captured = {}

    class Recorder:  # the LambdaRuntime the runner would start the container with
        def invoke(self, function_config, event, *args, **kwargs):
            captured[function_config.name] = function_config.env_vars.resolve()

    InvokeContext._get_container_manager = staticmethod(lambda *args, **kwargs: None)
    InvokeContext.lambda_runtime = property(lambda self: Recorder())
    if argv[:2] != ["local", "invoke"]:
        sys.exit(f"sam_local_env: expected `sam local invoke ...`, got {argv}")
    for function, event in json.loads(os.environ["SAM_CHECK_INVOCATIONS"]):
        cli.main(args=["local", "invoke", function, "-e", event, *argv[2:]], prog_name="sam", standalone_mode=False)
    print(MARK + json.dumps(captured))


def template_functions(template: Path) -> list[tuple[str, str]]:
    """(logical id, binary) of every function, as SAM CLI reads the template."""
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(str(template))
    return [(f.name, (f.metadata or {}).get("BuildProperties", {}).get("Binary")) for f in SamFunctionProvider(stacks).get_all()]


def first_event(binary: str) -> str:
    events = sorted((ROOT / "events" / binary).glob("*.json"))
    if not events:
        sys.exit(f"sam_local_env: events/{binary}/ has no event")
    return str(events[0].relative_to(ROOT))


def developer_shells(tmp: Path) -> dict[str, dict[str, str]]:
    """A developer's shell with real credentials, two ways."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base["SAM_CLI_TELEMETRY"] = "0"
    # Nothing here may need the network: SAM CLI's own calls (STS, its version check) fail fast.
    base.update(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="")
    (tmp / "credentials").write_text(
        f"[work]\naws_access_key_id = {DEVELOPER_KEY}\naws_secret_access_key = {DEVELOPER_SECRET}\n"
        "aws_session_token = developer-session-token\n"
    )
    (tmp / "config").write_text("[profile work]\nregion = eu-central-1\n")
    in_environment = dict(
        base,
        AWS_ACCESS_KEY_ID=DEVELOPER_KEY,
        AWS_SECRET_ACCESS_KEY=DEVELOPER_SECRET,
        AWS_SESSION_TOKEN="developer-session-token",
        AWS_REGION="eu-west-2",
        AWS_DEFAULT_REGION="eu-west-2",
        AWS_MAX_ATTEMPTS="1",
    )
    profile = dict(
        base,
        AWS_PROFILE="work",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "credentials"),
        AWS_CONFIG_FILE=str(tmp / "config"),
        AWS_MAX_ATTEMPTS="1",
    )
    return {"credentials in the environment": in_environment, "a named profile": profile}


def run(command: list[str], env: dict[str, str], invocations: list[tuple[str, str]]) -> dict[str, dict[str, str]]:
    env = dict(env, SAM_CHECK_INVOCATIONS=json.dumps(invocations))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        sys.exit(f"sam_local_env: {' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][len(MARK):])


def local_url_problems(function: str, env: dict[str, str]) -> list[str]:
    problems = []
    if env.get("AWS_ENDPOINT_URL") != LOCAL_ENDPOINT:
        problems.append(f"{function}: AWS_ENDPOINT_URL is {env.get('AWS_ENDPOINT_URL')!r}, not {LOCAL_ENDPOINT}")
    for name, value in env.items():
        if re.match(r"^https?://", value) and urllib.parse.urlsplit(value).hostname not in LOCAL_HOSTS:
            problems.append(f"{function}: {name}={value} is not local")
    return problems


def main() -> int:
    python = sys.executable
    this = str(Path(__file__).resolve())
    functions = template_functions(ROOT / "template.yaml")
    if not functions:
        sys.exit("sam_local_env: SAM CLI found no function in template.yaml")
    invocations = [(name, first_event(binary)) for name, binary in functions]
    failures = []  # one entry per failed check, each a list of problems
    checks = 0

    listed = subprocess.run(
        [python, str(ROOT / "scripts/template-binaries.py"), str(ROOT / "template.yaml")],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    checks += 1
    if sorted(listed) != sorted(binary for _, binary in functions):
        failures.append([f"scripts/template-binaries.py lists {listed}, SAM CLI reads {[b for _, b in functions]}"])

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shim = tmp / "sam"
        shim.write_text(f'#!/bin/sh\nexec "{python}" "{this}" --as-sam "$@"\n')
        shim.chmod(0o755)
        plain = [python, this, "--as-sam", "local", "invoke", "--env-vars", ENV_FILE]
        for shell, env in developer_shells(tmp).items():
            got = run(plain, env, invocations)
            for name, _ in functions:
                checks += 1
                problems = local_url_problems(name, got.get(name, {}))
                if problems:
                    failures.append([f"plain sam local invoke, {shell}: {p}" for p in problems])
            wrapped = run(["scripts/sam-local.sh", "invoke"], dict(env, SAM=str(shim)), invocations)
            for name, _ in functions:
                checks += 1
                env_of = wrapped.get(name, {})
                problems = local_url_problems(name, env_of)
                problems += [
                    f"{name}: {var}={env_of.get(var)!r}, not {want!r}" for var, want in DUMMY.items() if env_of.get(var) != want
                ]
                if "AWS_SESSION_TOKEN" in env_of:
                    problems.append(f"{name}: AWS_SESSION_TOKEN reaches the function")
                if problems:
                    failures.append([f"scripts/sam-local.sh invoke, {shell}: {p}" for p in problems])
            leaked = sorted(n for n, _ in functions if got.get(n, {}).get("AWS_ACCESS_KEY_ID") == DEVELOPER_KEY)
            print(
                f"sam local invoke, {shell}: {len(functions)} functions on {LOCAL_ENDPOINT}; plain sam passes the "
                f"developer's credentials to {len(leaked)} of them (scripts/sam-local.sh: dummy ones)"
            )

        # What was wrong: without the declaration the endpoint of --env-vars is dropped.
        text = (ROOT / "template.yaml").read_text()
        declaration = "        AWS_ENDPOINT_URL: !Ref AWS::NoValue\n"
        checks += 1
        if declaration not in text:
            failures.append(["template.yaml: Globals no longer declare AWS_ENDPOINT_URL: !Ref AWS::NoValue"])
        else:
            undeclared = tmp / "template.yaml"
            undeclared.write_text(text.replace(declaration, ""))
            name, event = invocations[0]
            got = run(plain + ["-t", str(undeclared)], developer_shells(tmp)["credentials in the environment"], [(name, event)])
            if "AWS_ENDPOINT_URL" in got.get(name, {}):
                failures.append(["without the template's declaration SAM CLI still passes AWS_ENDPOINT_URL: this check proves nothing"])

    for problems in failures:
        for problem in problems:
            print(f"FAIL {problem}")
    print(f"sam local environment: {checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--as-sam"]:
        as_sam(sys.argv[2:])
    else:
        sys.exit(main())
