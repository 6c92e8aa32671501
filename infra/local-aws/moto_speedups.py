"""Speed-ups of moto that change nothing it answers, measured with py-spy (`--gil`) during the
chaos test: before them moto's one Python core was saturated at about 100 orders a minute.

- Step Functions re-parses the state machine's ASL with ANTLR for every execution (a quarter of
  moto's CPU under load): parse each definition once, give every execution its own deep copy.
- Every `putEvents` task builds a new boto3 client (about a tenth): build one per region and
  service and reuse it (boto3 clients are thread-safe).
- JSONPath expressions are parsed again at each use, by Step Functions (`$.order`, ...) and by
  EventBridge for every rule target of every event, which even builds a new parser (yacc tables)
  each time (a third of moto's CPU once the ASL was cached): parse each expression once (parsed
  expressions are immutable; `find` does not change them).

`apply()` returns their names; they are installed by `install()`, which the launcher calls
before the first Step Functions request (importing moto's Step Functions parser costs about a
second and 130 MB, which a moto that never runs a state machine should not pay).
`LOCAL_AWS_UNPATCHED=1` skips them with the fixes.
"""

import copy
import functools
import threading


def stepfunctions_parse_each_definition_once() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.backend import execution_worker

    lock = threading.Lock()
    programs: dict[str, object] = {}

    def entrypoint(self):
        definition = self._evaluation_details.state_machine_details.definition
        with lock:
            program = programs.get(definition)
        if program is None:
            program = AmazonStateLanguageParser.parse(definition)[0]
            with lock:
                programs.setdefault(definition, program)
        # Components keep no evaluation state, but a copy makes sure no two executions share any.
        return copy.deepcopy(program)

    execution_worker.ExecutionWorker._get_evaluation_entrypoint = entrypoint


def stepfunctions_one_boto_client_per_service() -> None:
    import importlib

    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    cached = functools.lru_cache(maxsize=64)(lambda region, service: original(region, service))

    def boto_client_for(region, service, state_credentials=None):
        if state_credentials is not None:
            return original(region, service, state_credentials)
        return cached(region, service)

    boto_client.boto_client_for = boto_client_for
    base = "moto.stepfunctions.parser.asl.component.state.exec"
    for module in [
        "state_task.service.state_task_service_events",
        "state_task.service.state_task_service_sqs",
        "state_task.service.state_task_service_sfn",
        "state_task.service.state_task_service_dynamodb",
        "state_task.service.state_task_service_unsupported",
        "state_task.service.state_task_service_ecs",
        "state_task.service.state_task_service_glue",
        "state_task.lambda_eval_utils",
        "state_map.item_reader.eval.resource_eval_s3",
        "state_map.result_writer.resource_eval.resource_eval_s3",
    ]:
        loaded = importlib.import_module(f"{base}.{module}")
        if hasattr(loaded, "boto_client_for"):
            loaded.boto_client_for = boto_client_for


def parse_each_json_path_once() -> None:
    import jsonpath_ng
    import jsonpath_ng.ext

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    extended = functools.lru_cache(maxsize=4096)(jsonpath_ng.ext.parse)
    plain = functools.lru_cache(maxsize=4096)(jsonpath_ng.parse)
    # EventBridge imports `jsonpath_ng.ext.parse` at each call; Step Functions imported it once.
    jsonpath_ng.ext.parse = extended
    jsonpath_ng.parse = plain
    json_path.parse = extended
    result_path.parse = plain


SPEEDUPS = [
    stepfunctions_parse_each_definition_once,
    stepfunctions_one_boto_client_per_service,
    parse_each_json_path_once,
]


_installed = False
_lock = threading.Lock()


def apply() -> list[str]:
    """The speed-ups' names; `install()` puts them in place."""
    return [s.__name__ for s in SPEEDUPS]


def install() -> None:
    """Installs every speed-up once (before the first Step Functions request)."""
    global _installed
    with _lock:
        if not _installed:
            for speedup in SPEEDUPS:
                speedup()
            _installed = True
