"""Speed-ups of moto that change nothing it answers, measured with py-spy (`--gil`) during the
chaos test: before them moto's one Python core was saturated at about 100 orders a minute.

- Step Functions re-parses the state machine's ASL with ANTLR for every execution (a quarter of
  moto's CPU under load): parse each definition once. Executions share the parsed program: its
  components hold no evaluation state (each execution's lives in its own environment, keyed by
  the component's heap key, which is drawn once at parse time). A deep copy per execution, as
  this did at first, was 11 % of moto's GIL time in the soak (py-spy, 2026-12-03).
- Every `putEvents` task builds a new boto3 client (about a tenth): build one per region and
  service and reuse it (boto3 clients are thread-safe).
- JSONPath expressions are parsed again at each use, by Step Functions (`$.order`, ...) and by
  EventBridge for every rule target of every event, which even builds a new parser (yacc tables)
  each time (a third of moto's CPU once the ASL was cached): parse each expression once (parsed
  expressions are immutable; `find` does not change them).

- SQS's ReceiveMessage checks each message it returns against the queue's retention period by
  asking for the queue's attributes, which computes all of them, approximate counts included,
  each a pass over every message of the queue, and GetQueueAttributes builds that whole dict
  again for every name asked: O(n^2) per receive (a fifth of moto's CPU in the chaos test). Read
  the retention period from the queue, and build the attributes once per request.
- SendMessage (and every EventBridge rule target that is a queue) reads the queue's attributes
  to see whether a FIFO queue deduplicates by content: for a standard queue the answer is always
  no, yet it costs three passes over the queue's messages, so a queue that collects events
  makes every send slower than the last. While a send runs, a standard queue's attributes are
  not built.

- The response serializer works out, for every attribute of every object it writes, which
  Python attribute holds it, by building six alias providers and asking each (a quarter of
  moto's CPU once the above were in place, most of it for DynamoDB items). The answer depends
  only on the object's class, the shape, the shape's parent and the key: work it out once.

- A Query, on the table or on an index, sorts every item of the table and then compares each
  with the key condition: O(n log n) Python comparisons per query, under the DynamoDB lock (the
  sweeper's four queries of its sparse index, every scaled five minutes, held the lock for
  seconds once the orders table had a few thousand items, and the chaos test stopped moving).
  Give the query only the items whose string or binary key attributes equal the condition's,
  sorted as moto sorts them; moto still applies every condition itself.

- SQS's ReceiveMessage walks `Queue.messages`, which builds the list of every visible message
  (two clock reads per message) before the receive takes its first ten; DeleteMessage scans the
  queue twice and rebuilds it. A queue with a backlog of thousands (a saga worker behind its
  commands) made every receive and delete on it cost milliseconds, which slowed the worker
  further. While a receive runs, its messages are visited lazily and it stops at what it
  returns; a delete finds its message once and removes it.

- Every request, before moto looks at it, is matched to a service under one lock shared by all
  requests: the dispatcher lists moto's package directory (`os.listdir` and an `isdir` for each
  of about 150 entries) and tries every service's URL patterns, and then the service's handler
  asks `inspect.getmembers` for its class's methods to see whether the action is one (together
  about an eighth of moto's GIL time in the chaos test, and a queue for every request). moto's
  packages and classes do not change while it runs: list them once; remember which service a
  host is and which methods a class has.
- moto runs its Flask apps in debug mode, where every request that reads its form builds a new
  class to give a better error for a missing multipart file (about 2 %); moto reads no such file
  for the services here: that class is not built.
- werkzeug writes a line to stderr for every request under the logging lock (about 4 %); the
  launcher keeps warnings and errors unless `LOCAL_AWS_REQUEST_LOG=1` asks for every request.

`apply()` installs all but Step Functions' at once (the DynamoDB process of split.py never sees a
Step Functions request) and returns every name; Step Functions' are installed by `install()`,
which the launcher calls before the first Step Functions request (importing moto's Step Functions
parser costs about a second and 130 MB, which a moto that never runs a state machine should not
pay).
`LOCAL_AWS_UNPATCHED=1` skips them with the fixes.
"""

import copy
import functools
import inspect
import threading


def stepfunctions_parse_each_definition_once() -> None:
    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.backend import execution_worker

    lock = threading.Lock()
    programs: dict[str, object] = {}

    def fix_heap_keys(node, seen: set) -> None:
        # The one attribute a component sets after parsing: its key into the execution's heap
        # (where retry attempts are counted), drawn on first use. Drawn here, under the lock, so
        # that two executions reading it at once cannot draw two.
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, EvalComponent):
            node.heap_key
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, (list, tuple, set, frozenset)):
            children = node
        else:
            children = vars(node).values() if hasattr(node, "__dict__") else ()
        for child in children:
            if isinstance(child, (Component, dict, list, tuple, set, frozenset)):
                fix_heap_keys(child, seen)

    def entrypoint(self):
        definition = self._evaluation_details.state_machine_details.definition
        with lock:
            program = programs.get(definition)
            if program is None:
                program = AmazonStateLanguageParser.parse(definition)[0]
                fix_heap_keys(program, set())
                programs[definition] = program
        return program

    execution_worker.ExecutionWorker._get_evaluation_entrypoint = entrypoint


def stepfunctions_one_boto_client_per_service() -> None:
    import importlib

    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    cached = functools.lru_cache(maxsize=64)(lambda region, service: original(region, service))

    # moto's boto_client_for ignores the credentials (every client signs with the same dummy
    # keys), so one client per region and service answers exactly as a new one would.
    def boto_client_for(region, service, state_credentials=None):
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


def sqs_attributes_once_per_request() -> None:
    from moto.sqs.models import SQSBackend

    def is_message_valid_based_on_retention_period(self, queue_name, message):
        queue = self.get_queue(queue_name)
        return queue.message_retention_period + message.sent_timestamp / 1000 > unix_time()

    original = SQSBackend.get_queue_attributes

    def get_queue_attributes(self, queue_name, attribute_names):
        if not attribute_names or "All" in attribute_names:
            return original(self, queue_name, attribute_names)
        queue = self.get_queue(queue_name)
        valid = ["All"] + queue.BASE_ATTRIBUTES + queue.FIFO_ATTRIBUTES + queue.KMS_ATTRIBUTES
        if any(name not in valid for name in attribute_names):
            return original(self, queue_name, attribute_names)  # raises InvalidAttributeName
        everything = queue.attributes
        return {name: everything[name] for name in attribute_names if everything.get(name) is not None}

    from moto.core.utils import unix_time

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    SQSBackend.get_queue_attributes = get_queue_attributes


def sqs_send_without_attributes() -> None:
    from moto.sqs.models import Queue, SQSBackend

    sending = threading.local()
    full = Queue.attributes.fget

    def attributes(self):
        # Only `ContentBasedDeduplication` is read while sending, and only FIFO queues have it.
        if getattr(sending, "active", False) and not self.fifo_queue:
            return {}
        return full(self)

    original = SQSBackend.send_message

    def send_message(self, *args, **kwargs):
        sending.active = True
        try:
            return original(self, *args, **kwargs)
        finally:
            sending.active = False

    Queue.attributes = property(attributes)
    SQSBackend.send_message = send_message


def serializer_possible_keys_once() -> None:
    from moto.core import serialize

    for picker in (serialize.AttributePicker, serialize.XFormedAttributePicker):
        original = picker.get_possible_keys
        cache: dict = {}
        lock = threading.Lock()

        def get_possible_keys(self, context, original=original, cache=cache, lock=lock):
            shape = context.shape
            # Aliases come from the class (its Meta, its name), the shape, its parent and the key.
            key = (
                type(self),
                tuple(self.alias_providers),
                type(context.obj),
                shape,
                getattr(shape, "parent", None),
                context.key,
            )
            try:
                return cache[key]
            except KeyError:
                pass
            except TypeError:  # an unhashable part: work it out as moto does
                return tuple(original(self, context))
            keys = tuple(original(self, context))
            with lock:
                cache[key] = keys
            return keys

        picker.get_possible_keys = get_possible_keys


def dispatcher_finds_services_once() -> None:
    from moto import backends
    from moto.core import responses, utils
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules

    original = DomainDispatcherApplication.get_backend_for_host
    found: dict = {}

    def get_backend_for_host(self, host):
        # Called under the dispatcher's lock; `None` (no service for this host) is remembered too.
        try:
            return found[host]
        except KeyError:
            backend = found[host] = original(self, host)
            return backend

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host

    method_names = functools.cache(lambda clazz: frozenset(utils.method_names_from_class(clazz)))
    responses.method_names_from_class = method_names


def dynamodb_query_reads_only_matching_items() -> None:
    from moto.dynamodb.models.table import Table

    original = Table.query
    signature = inspect.signature(original)

    def query(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        hash_key = bound.arguments.get("hash_key")
        wanted = list(bound.arguments.get("hash_key_conditions") or [])
        if not bound.arguments.get("index_name") and hash_key is not None:
            wanted.append((self.hash_key_attr, hash_key))
        if not wanted or any(value.type not in ("S", "B") for _, value in wanted):
            return original(self, *args, **kwargs)
        keys = [(name, value.type, value.value) for name, value in wanted]

        def matches(item) -> bool:
            for name, kind, value in keys:
                attr = item.attrs.get(name)
                if attr is None or attr.type != kind or attr.value != value:
                    return False
            return True

        def all_items():
            items = []
            for hash_set in self.items.values():
                for item in hash_set.values() if self.range_key_attr else [hash_set]:
                    if matches(item):
                        items.append(item)
            return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

        # DynamoDB requests run one at a time (the launcher's lock): the instance's all_items is
        # this query's alone while it runs.
        self.all_items = all_items
        try:
            return original(self, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query


def sqs_receive_and_delete_without_scanning_the_queue() -> None:
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue, SQSBackend

    receiving = threading.local()
    every_visible = Queue.messages.fget

    class Visible:
        """The queue's visible messages, visited as they are asked for."""

        def __init__(self, queue):
            self.queue = queue

        def __iter__(self):
            return (m for m in list(self.queue._messages) if m.visible and not m.delayed)

        def __bool__(self):
            return any(True for _ in self)

        def __len__(self):
            return sum(1 for _ in self)

    def messages(self):
        if getattr(receiving, "active", False):
            return Visible(self)
        return every_visible(self)

    original_receive = SQSBackend.receive_message

    def receive_message(self, *args, **kwargs):
        receiving.active = True
        try:
            return original_receive(self, *args, **kwargs)
        finally:
            receiving.active = False

    def delete_message(self, receipt_handle):
        if receipt_handle in self.deleted_messages:
            return  # deleted already: moto (and SQS) accept it again
        with self._messages_lock:
            found = next((m for m in self._messages if m.had_receipt_handle(receipt_handle)), None)
            if found is None:
                raise ReceiptHandleIsInvalid()
            self._messages = [m for m in self._messages if m is not found]
            self.pending_messages.discard(found)
            self.deleted_messages.update(found.all_receipt_handles)

    Queue.messages = property(messages)
    SQSBackend.receive_message = receive_message
    Queue.delete_message = delete_message


def stepfunctions_executions_found_by_arn() -> None:
    from moto.stepfunctions import models as base
    from moto.stepfunctions.parser import models
    from moto.stepfunctions.parser.api import ExecutionStatus

    # A state machine's executions are a list that only grows (closed executions stay, as AWS
    # keeps them 90 days). Beside it, an index by ARN and by name, filled where moto appends.
    class Executions(list):
        def __init__(self, items=()):
            super().__init__(items)
            self.by_arn = {e.execution_arn: e for e in self}
            self.by_name = {e.name: e for e in self}

        def append(self, execution):
            super().append(execution)
            self.by_arn[execution.execution_arn] = execution
            self.by_name[execution.name] = execution

    def executions_of(sm) -> Executions:
        held = sm.__dict__.get("executions", [])
        if not isinstance(held, Executions):
            held = sm.__dict__["executions"] = Executions(held)
        return held

    base.StateMachine.executions = property(
        executions_of, lambda sm, value: sm.__dict__.__setitem__("executions", Executions(value))
    )

    def find(state_machine, execution_arn):
        execution = state_machine.executions.by_arn.get(execution_arn)
        if execution is None:
            raise base.ExecutionDoesNotExist("Execution Does Not Exist: '" + execution_arn + "'")
        return execution

    def describe_execution(self, execution_arn):
        self._validate_execution_arn(execution_arn)
        return find(self._get_state_machine_for_execution(execution_arn), execution_arn)

    def stop_execution(self, execution_arn):
        execution = find(self, execution_arn)
        execution.stop(stop_date=base.utcnow(), error="", cause="")
        return execution

    def handle_name_input_idempotency(self, name, execution_input):
        execution = self.executions.by_name.get(name)
        if execution is None:
            return None
        if execution_input == execution.execution_input and execution.status == "RUNNING":
            return execution
        raise base.ExecutionAlreadyExists("Execution Already Exists: '" + execution.execution_arn + "'")

    # SendTaskSuccess/Failure/Heartbeat look for the token among the running executions, which
    # moto finds by walking every execution: keep the ones started and not yet seen closed.
    lock = threading.Lock()
    running: dict[int, object] = {}
    original_start = models.StepFunctionsParserBackend.start_execution

    def start_execution(self, *args, **kwargs):
        execution = original_start(self, *args, **kwargs)
        with lock:
            running[id(execution)] = (self, execution)
        return execution

    def get_executions(self, execution_status=None):
        if execution_status != ExecutionStatus.RUNNING:
            return original_get_executions(self, execution_status)
        found = []
        with lock:
            for key, (backend, execution) in list(running.items()):
                if execution.status != ExecutionStatus.RUNNING:
                    del running[key]
                elif backend is self:
                    found.append(execution)
        return found

    original_get_executions = models.StepFunctionsParserBackend._get_executions
    models.StepFunctionsParserBackend.start_execution = start_execution
    models.StepFunctionsParserBackend._get_executions = get_executions
    base.StepFunctionBackend.describe_execution = describe_execution
    base.StateMachine.stop_execution = stop_execution
    base.StateMachine._handle_name_input_idempotency = handle_name_input_idempotency


def stepfunctions_closed_executions_kept_compact() -> None:
    import pickle
    import zlib

    from moto.stepfunctions.parser.backend import execution

    # A closed execution keeps its whole evaluation environment (states, heap, callback
    # endpoints with their locks, the event manager) for as long as moto runs, though all that
    # is read of it again is its history (GetExecutionHistory) and its final program state.
    # Once it has closed and its status is set, those two are kept, the history pickled and
    # compressed, and the environment is let go. GetExecutionHistory answers the same events.
    class ClosedHistory:
        def __init__(self, events: list):
            self.count = len(events)
            self._blob = zlib.compress(pickle.dumps(events, protocol=pickle.HIGHEST_PROTOCOL))

        def get_event_history(self) -> list:
            return pickle.loads(zlib.decompress(self._blob))

    class NoCallbacks:
        def notify(self, callback_id, outcome) -> bool:
            return False

        def heartbeat(self, callback_id) -> bool:
            return False

        def get(self, callback_id):
            return None

    class ClosedEnvironment:
        callback_pool_manager = NoCallbacks()

        def __init__(self, env):
            self.event_manager = ClosedHistory(env.event_manager.get_event_history())
            self._program_state = env.program_state()

        def program_state(self):
            return copy.deepcopy(self._program_state)

        def is_running(self) -> bool:
            return False

        def set_stop(self, stop_date, cause, error) -> None:
            pass  # a closed execution stays as it closed

    class ClosedWorker:
        def __init__(self, env):
            self.env = ClosedEnvironment(env)

        def stop(self, stop_date, error, cause) -> None:
            pass

    original = execution.BaseExecutionWorkerCommunication.terminated

    def terminated(self) -> None:
        original(self)
        worker = self.execution.exec_worker
        if worker is not None and worker.env is not None and not isinstance(worker, ClosedWorker):
            self.execution.exec_worker = ClosedWorker(worker.env)

    execution.BaseExecutionWorkerCommunication.terminated = terminated


SPEEDUPS = [
    stepfunctions_parse_each_definition_once,
    stepfunctions_one_boto_client_per_service,
    parse_each_json_path_once,
    stepfunctions_executions_found_by_arn,
    stepfunctions_closed_executions_kept_compact,
]


_installed = False
_lock = threading.Lock()


def no_debug_class_per_request() -> None:
    from flask import debughelpers

    debughelpers.attach_enctype_error_multidict = lambda request: None


# Installed when the launcher starts: the DynamoDB process (split.py) never sees a Step Functions
# request, and without these its queries sorted the whole table (py-spy, 20 minutes into a
# 10,000-order soak: half of that process's time).
AT_START = [
    dispatcher_finds_services_once,
    no_debug_class_per_request,
    sqs_attributes_once_per_request,
    sqs_send_without_attributes,
    serializer_possible_keys_once,
    dynamodb_query_reads_only_matching_items,
    sqs_receive_and_delete_without_scanning_the_queue,
]


def apply() -> list[str]:
    """Installs the speed-ups every request needs; returns every name (`install()` puts the rest
    in place)."""
    for speedup in AT_START:
        speedup()
    return [s.__name__ for s in AT_START + SPEEDUPS]


def install() -> None:
    """Installs every speed-up once (before the first Step Functions request)."""
    global _installed
    with _lock:
        if not _installed:
            for speedup in SPEEDUPS:
                speedup()
            _installed = True
