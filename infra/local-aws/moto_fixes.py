"""Fixes to moto 5.2.5 where it differs from AWS in ways the shop relies on.

Each fix is one small function that monkeypatches moto in this process; `apply()` runs them all
and returns their names. The launcher (`moto_server.py`) applies them unless
`LOCAL_AWS_UNPATCHED=1` is set, which exists to measure plain moto against the conformance suite
(`infra/local-aws/tests/integration/conformance.rs`). Every fix names the conformance check that needs it and
the AWS documentation it follows.

Written against moto 5.2.5 (pinned in requirements-dev.txt): `apply()` refuses another version,
as these patches replace moto internals.
"""

import copy
import threading
import time

import moto

MOTO_VERSION = "5.2.5"

# Real DynamoDB Streams keep records for 24 hours.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html
STREAM_RETENTION_SECONDS = 24 * 60 * 60
# A shard iterator expires 15 minutes after it is returned.
# https://docs.aws.amazon.com/amazondynamodbstreams/latest/APIReference/API_GetShardIterator.html
SHARD_ITERATOR_LIFETIME_SECONDS = 15 * 60

# Runtime settings, changed through POST /_local/config (see moto_server.py).
settings = {"stream_retention_seconds": STREAM_RETENTION_SECONDS}


def dynamodb_transactions_validate_then_apply() -> None:
    """TransactWriteItems checks every item first and applies nothing unless all pass.

    moto applies each item as it goes (appending stream records) and, when a condition fails,
    puts back a deep copy of every table involved, taken before the transaction: the cancelled
    items' stream records stay, every shard iterator opened before holds the replaced table and
    never sees another write, and each transaction costs O(table size) in time and memory.

    Here: (1) the request is validated (one operation per item, one item once per transaction,
    keys well formed) and every condition (ConditionCheck, and Put/Update/Delete with a
    ConditionExpression) is evaluated against the current items, without writing; any failure
    raises TransactionCanceledException with one reason per item in request order (`None` for
    the items that passed, `ConditionalCheckFailed` with the item when
    ReturnValuesOnConditionCheckFailure is ALL_OLD). (2) Only then are the writes applied, with
    an undo log of the touched items (not a table copy): an error while applying (an update
    expression that does not fit the item) restores those items and drops the stream records the
    transaction appended. DynamoDB requests are serialised by the launcher's lock, so nothing can
    change between (1) and (2).

    Conformance: dynamodb::transactions_* (cancellation reasons, all-or-nothing including the
    stream, iterators opened before a cancelled transaction, cost independent of table size,
    concurrent conditional decrements).
    https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
    """
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend

    operations = {"ConditionCheck", "Put", "Delete", "Update"}

    def transact_write_items(self, transact_items):
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        # (1) Validate the request as a whole: a ValidationException, nothing cancelled.
        plan = []
        seen = set()
        for entry in transact_items:
            if len(entry) > 1:
                raise TransactWriteSingleOpException()
            op_type, op = next(iter(entry.items()))
            if op_type not in operations:
                raise MockValidationException(f"Unsupported transaction operation {op_type}")
            table = self.get_table(op["TableName"])
            if op_type == "Put":
                attrs = op["Item"]
                if table.hash_key_attr not in attrs or (
                    table.range_key_attr is not None and table.range_key_attr not in attrs
                ):
                    raise MockValidationException(
                        "One or more parameter values were invalid: Missing the key in the item"
                    )
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            hash_value, range_value = self.get_keys_value(table, key)
            identity = (table.name, hash_value, range_value)
            if identity in seen:
                raise MultipleTransactionsException()
            seen.add(identity)
            plan.append((op_type, op, table, key, hash_value, range_value))

        # (1) Evaluate every condition against the current items.
        reasons = []
        for op_type, op, table, key, hash_value, range_value in plan:
            condition = op.get("ConditionExpression")
            if condition is None:
                reasons.append((None, None, None))
                continue
            current = table.get_item(hash_value, range_value)
            check = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if check.expr(current):
                reasons.append((None, None, None))
            else:
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current is not None:
                    old = current.to_json()["Attributes"]
                reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)

        # (2) Apply, keeping an undo log of the touched items and of each stream's length.
        undo = []
        stream_marks = {}
        for index, (op_type, op, table, key, hash_value, range_value) in enumerate(plan):
            if op_type == "ConditionCheck":
                continue
            try:
                shard = table.stream_shard
                if shard is not None and id(shard) not in stream_marks:
                    stream_marks[id(shard)] = (shard, len(shard.items))
                undo.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
                names = op.get("ExpressionAttributeNames")
                values = op.get("ExpressionAttributeValues")
                if op_type == "Put":
                    self.put_item(table.name, op["Item"], expression_attribute_names=names,
                                  expression_attribute_values=values)
                elif op_type == "Delete":
                    self.delete_item(table.name, key)
                else:
                    self.update_item(table.name, key, update_expression=op["UpdateExpression"],
                                     expression_attribute_names=names, expression_attribute_values=values)
            except Exception as error:
                for touched, h, r, previous in reversed(undo):
                    _restore_item(touched, h, r, previous)
                for shard, length in stream_marks.values():
                    del shard.items[length:]
                if isinstance(error, MockValidationException):
                    raise
                failed = [(None, None, None)] * len(plan)
                failed[index] = (type(error).__name__, str(error), None)
                raise TransactionCanceledException(failed) from error

    DynamoDBBackend.transact_write_items = transact_write_items


def _restore_item(table, hash_value, range_value, previous) -> None:
    """Puts an item back as it was (None: absent), without a stream record."""
    if range_value is not None:
        if previous is None:
            table.items[hash_value].pop(range_value, None)
            if not table.items[hash_value]:
                table.items.pop(hash_value, None)
        else:
            table.items[hash_value][range_value] = previous
    elif previous is None:
        table.items.pop(hash_value, None)
    else:
        table.items[hash_value] = previous


def dynamodb_update_item_creates_one_insert() -> None:
    """An UpdateItem that creates an item writes one INSERT stream record, and a failed one nothing.

    moto creates the missing item by putting its key alone (one INSERT record with only the key
    in NewImage), then applies the update (a second INSERT). Stream consumers see two INSERTs,
    the first without the attributes (an outbox relay filtering on NewImage sees a record it does
    not expect). And when the update expression fails on the new item (say ADD to a string), the
    key-only item and its record stay.

    Here the key-only record is removed (the real INSERT takes its sequence number); on an error
    the created item and any record are removed.

    Conformance: streams::update_item_that_creates_an_item_is_one_insert.
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html ("INSERT - A new
    item was added to the table", one stream record per modification)
    """
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.update_item

    def update_item(self, table_name, key, *args, **kwargs):
        table = self.get_table(table_name)
        shard = table.stream_shard
        mark = len(shard.items) if shard is not None else 0
        try:
            hash_value, range_value = self.get_keys_value(table, key)
            existed = table.get_item(hash_value, range_value) is not None
        except Exception:
            return original(self, table_name, key, *args, **kwargs)
        try:
            result = original(self, table_name, key, *args, **kwargs)
        except Exception:
            if not existed:
                _restore_item(table, hash_value, range_value, None)
                if shard is not None:
                    del shard.items[mark:]
            raise
        if shard is not None and not existed and len(shard.items) == mark + 2:
            placeholder, real = shard.items[mark], shard.items[mark + 1]
            if placeholder.record["eventName"] == "INSERT" and real.record["eventName"] == "INSERT":
                real.record["dynamodb"]["SequenceNumber"] = placeholder.record["dynamodb"]["SequenceNumber"]
                del shard.items[mark]
        return result

    DynamoDBBackend.update_item = update_item


def dynamodb_streams_retention_and_iterators() -> None:
    """Stream records are kept for a bounded time (24 h, as AWS), iterators expire after 15 min.

    moto keeps every stream record and every shard iterator it ever handed out (one per
    GetRecords call) for the life of the process, and numbers records by their position in the
    list, so it could never drop one. Here each record carries its creation time; records older
    than `settings["stream_retention_seconds"]` (default 24 h, changeable at runtime through
    POST /_local/config) are dropped from the front, and sequence numbers keep counting across
    the trimmed ones (TRIM_HORIZON starts at the oldest record kept, LATEST after the newest).
    Iterators older than 15 minutes are forgotten, and GetRecords with an unknown or expired one
    answers ExpiredIteratorException (HTTP 400) instead of moto's HTTP 500.

    Conformance: streams::records_older_than_the_retention_are_trimmed (the iterator expiry is
    not checked: it takes 15 minutes).
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html
    https://docs.aws.amazon.com/amazondynamodbstreams/latest/APIReference/API_GetRecords.html
    """
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.models.table import StreamRecord, StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator

    def trimmed(shard) -> int:
        return getattr(shard, "local_trimmed", 0)

    def trim(shard) -> None:
        retention = settings["stream_retention_seconds"]
        items = shard.items
        if not items:
            return
        now = time.time()
        # Trim in batches (at most ~100 times per retention period), not on every write.
        if now - getattr(items[0], "local_created", now) <= retention * 1.01:
            return
        cutoff = now - retention
        count = 0
        while count < len(items) and getattr(items[count], "local_created", now) < cutoff:
            count += 1
        del items[:count]
        shard.local_trimmed = trimmed(shard) + count

    def add(self, old, new) -> None:
        trim(self)
        view = self.table.stream_specification["StreamViewType"]
        if old is None:
            event_name = "INSERT"
        elif new is None:
            event_name = "REMOVE"
        else:
            event_name = "MODIFY"
        seq = self.starting_sequence_number + trimmed(self) + len(self.items)
        record = StreamRecord(self.table, view, event_name, old, new, seq)
        record.local_created = time.time()
        self.items.append(record)
        # moto hands records to Lambda event source mappings (which need Docker; unused here).
        result = None
        from moto.awslambda.utils import get_backend

        for arn, esm in self.table.lambda_event_source_mappings.items():
            region = arn.split(":")[3]
            result = get_backend(self.account_id, region).send_dynamodb_items(
                arn, self.items, esm.event_source_arn
            )
        if result:
            self.local_trimmed = trimmed(self) + len(self.items)
            self.items = []

    def get(self, start, quantity):
        trim(self)
        index = max(0, start - self.starting_sequence_number - trimmed(self))
        return [record.to_json() for record in self.items[index : index + quantity]]

    StreamShard.add = add
    StreamShard.get = get

    original_iterator_init = ShardIterator.__init__

    def iterator_init(self, streams_backend, stream_shard, shard_iterator_type, sequence_number=None):
        original_iterator_init(self, streams_backend, stream_shard, shard_iterator_type, sequence_number)
        if shard_iterator_type == "LATEST":
            self.sequence_number = stream_shard.starting_sequence_number + trimmed(stream_shard) + len(
                stream_shard.items
            )
        self.local_created = time.monotonic()

    ShardIterator.__init__ = iterator_init

    lock = threading.Lock()

    def forget_expired(backend) -> None:
        now = time.monotonic()
        with lock:
            if now - getattr(backend, "local_last_pruned", 0.0) < 60:
                return
            backend.local_last_pruned = now
            expired = [
                arn
                for arn, iterator in backend.shard_iterators.items()
                if now - getattr(iterator, "local_created", now) > SHARD_ITERATOR_LIFETIME_SECONDS
            ]
            for arn in expired:
                backend.shard_iterators.pop(arn, None)

    original_get_shard_iterator = DynamoDBStreamsBackend.get_shard_iterator

    def get_shard_iterator(self, *args, **kwargs):
        forget_expired(self)
        return original_get_shard_iterator(self, *args, **kwargs)

    def get_records(self, iterator_arn, limit):
        forget_expired(self)
        iterator = self.shard_iterators.get(iterator_arn)
        if iterator is None:
            raise JsonRESTError(
                "ExpiredIteratorException",
                "The shard iterator has expired and can no longer be used to retrieve stream records.",
            )
        return iterator.get(limit)

    DynamoDBStreamsBackend.get_shard_iterator = get_shard_iterator
    DynamoDBStreamsBackend.get_records = get_records


def stepfunctions_new_task_token_per_attempt() -> None:
    """Each attempt of a callback task gets its own task token; a closed attempt's token is refused.

    moto generates `$$.Task.Token` once when the state is entered, so a Retry re-runs the task
    with the first attempt's token. That token's callback endpoint was already interrupted when
    the first attempt ended, so every retry attempt "times out" at once instead of waiting its
    TimeoutSeconds(Path), and a SendTaskSuccess with the old token is accepted (and lost) while
    the execution runs.

    Here every retry attempt of a `.waitForTaskToken` task gets a new token (and endpoint) before
    its parameters are evaluated, so the command it sends carries the new token and its timeout
    is armed afresh. When an attempt ends (answered, failed or timed out) its token is closed:
    SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat with it answer TaskTimedOut ("The task
    token has either expired or the task associated with the token has already been closed").

    Conformance: stepfunctions::each_retry_attempt_gets_a_new_token_and_its_full_timeout,
    stepfunctions::a_closed_token_is_refused.
    https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html
    https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
        ResourceCondition,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackConsumerTimeout

    # StateTaskServiceCallback inherits it from ExecutionState; overriding it here touches only
    # service-integration tasks.
    original = StateTaskServiceCallback._evaluate_with_timeout

    def _evaluate_with_timeout(self, env):
        waits_for_token = (
            self._is_integration_pattern()
            and self.resource.condition == ResourceCondition.WaitForTaskToken
            and ResourceCondition.WaitForTaskToken in self._supported_integration_patterns
        )
        if not waits_for_token:
            return original(self, env)
        context = env.states.context_object
        if context.context_object_data.get("State", {}).get("RetryCount", 0) > 0:
            token = context.update_task_token()
            env.callback_pool_manager.add(token)
        token = context.context_object_data["Task"]["Token"]
        try:
            return original(self, env)
        finally:
            endpoint = env.callback_pool_manager.get(token)
            if endpoint is not None and endpoint.consumer_error is None:
                endpoint.report(CallbackConsumerTimeout())

    StateTaskServiceCallback._evaluate_with_timeout = _evaluate_with_timeout


def stepfunctions_task_errors_are_aws_errors() -> None:
    """SendTaskSuccess/Failure/Heartbeat answer TaskTimedOut and TaskDoesNotExist as HTTP 400 errors.

    moto's Step Functions parser raises its own TaskTimedOut / TaskDoesNotExist classes, which
    cannot be constructed without a message: the server answers HTTP 500 instead, and an SDK sees
    an unhandled error (and retries it). And it tells a timed-out task from a missing one by the
    wrong object, so a closed token would be TaskDoesNotExist. Here the errors are moto
    `AWSError`s with their AWS names, a closed token is TaskTimedOut, and only running
    executions are searched (SendTaskFailure searched closed ones too).

    Conformance: stepfunctions::each_retry_attempt_gets_a_new_token_and_its_full_timeout.
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html
    """
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser import models

    class TaskTimedOut(AWSError):
        TYPE = "TaskTimedOut"
        STATUS = 400

        def __init__(self, message: str = "The task token has either expired or the task associated with the "
                     "token has already been closed."):
            super().__init__(message)

    class TaskDoesNotExist(AWSError):
        TYPE = "TaskDoesNotExist"
        STATUS = 400

        def __init__(self, message: str = "The task does not exist."):
            super().__init__(message)

    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.asl.eval.callback.callback import (
        CallbackConsumerTimeout,
        CallbackNotifyConsumerError,
        CallbackOutcomeFailure,
        CallbackOutcomeSuccess,
    )

    # moto also tests the wrapper exception, not the consumer error it carries, for a timeout:
    # every closed token answered TaskDoesNotExist.
    def answer(backend, token, deliver, executions):
        for execution in executions:
            try:
                if deliver(execution.exec_worker.env.callback_pool_manager):
                    return
            except CallbackNotifyConsumerError as error:
                if isinstance(error.callback_consumer_error, CallbackConsumerTimeout):
                    raise TaskTimedOut()
                raise TaskDoesNotExist()
        raise models.InvalidToken()

    def send_task_success(self, task_token, outcome):
        result = CallbackOutcomeSuccess(callback_id=task_token, output=outcome)
        answer(self, task_token, lambda pool: pool.notify(callback_id=task_token, outcome=result),
               self._get_executions(ExecutionStatus.RUNNING))

    def send_task_failure(self, task_token, error=None, cause=None):
        result = CallbackOutcomeFailure(callback_id=task_token, error=error, cause=cause)
        answer(self, task_token, lambda pool: pool.notify(callback_id=task_token, outcome=result),
               self._get_executions(ExecutionStatus.RUNNING))
        return models.SendTaskFailureOutput()

    def send_task_heartbeat(self, task_token):
        answer(self, task_token, lambda pool: pool.heartbeat(callback_id=task_token),
               self._get_executions(ExecutionStatus.RUNNING))

    models.StepFunctionsParserBackend.send_task_success = send_task_success
    models.StepFunctionsParserBackend.send_task_failure = send_task_failure
    models.StepFunctionsParserBackend.send_task_heartbeat = send_task_heartbeat


def stepfunctions_send_task_failure_keeps_the_cause() -> None:
    """SendTaskFailure passes its `cause` on: a Catch's ResultPath gets {"Error", "Cause"}.

    moto's handler reads `error` and drops `cause`, so the caught error output and a failed
    execution's cause are null. The saga's compensation steps read the cause from `$.error`.

    Conformance: stepfunctions::callback_tasks_are_answered_with_success_or_failure_and_caught.
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskFailure.html
    https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html (error output)
    """
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(self):
        backend = self.stepfunction_backend
        token, error, cause = self._get_param("taskToken"), self._get_param("error"), self._get_param("cause")
        if "cause" in backend.send_task_failure.__code__.co_varnames:
            backend.send_task_failure(token, error=error, cause=cause)
        else:
            backend.send_task_failure(token, error=error)
        return EmptyResult()

    StepFunctionResponse.send_task_failure = send_task_failure


def stepfunctions_executions_keep_their_trace_header() -> None:
    """An execution's X-Ray header is StartExecution's `X-Amzn-Trace-Id` HTTP header, else its
    `traceHeader` parameter (the header wins), and DescribeExecution returns it.

    moto's handler passes neither to its backend (whose executions would keep one) and leaves
    `traceHeader` out of DescribeExecution. The saga starter and the sweeper start executions
    in the order's trace.

    Conformance: stepfunctions::an_execution_keeps_the_trace_header_it_was_started_with.
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html
    """
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def start_execution(self):
        header = self.headers.get("X-Amzn-Trace-Id") or self._get_param("traceHeader")
        execution = self.stepfunction_backend.start_execution(
            self._get_param("stateMachineArn"),
            self._get_param("name"),
            self._get_param("input", if_none="{}"),
            trace_header=header,
        )
        return ActionResult({"executionArn": execution.execution_arn, "startDate": execution.start_date})

    describe = StepFunctionResponse.describe_execution

    def describe_execution(self):
        result = describe(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        header = getattr(execution, "trace_header", None)
        if header and isinstance(result.result, dict):
            result.result["traceHeader"] = header
        return result

    StepFunctionResponse.start_execution = start_execution
    StepFunctionResponse.describe_execution = describe_execution


def eventbridge_targets_get_the_whole_event() -> None:
    """An event delivered to a target (SQS) carries every envelope field, `account` included.

    moto rebuilds the delivered event from a default input template that has no `account`, so
    an SQS target's body lacks it (AWS delivers the event as it is, with version, id,
    detail-type, source, account, time, region, resources and detail).

    Conformance: eventbridge::rules_match_with_the_pattern_language_and_deliver_to_sqs.
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html
    """
    from moto.events.utils import EventTemplateParser

    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
            '"source": "<source>",', '"source": "<source>", "account": "<account>",'
        )


def eventbridge_replay_honours_its_window_and_rules() -> None:
    """A replay sends the archive's events of [EventStartTime, EventEndTime] to the rules of
    Destination.FilterArns (every rule of the bus without it).

    moto replays every archived event, whatever the window, to every rule of the bus.

    Conformance: eventbridge::a_replay_sends_only_the_window_s_archived_events_and_only_to_the_filtered_rules.
    https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_StartReplay.html
    https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_ReplayDestination.html
    """
    import uuid

    from moto.core.utils import unix_time
    from moto.events.models import Replay, ReplayState, events_backends

    def replay_events(self, archive) -> None:
        backend = events_backends[self.account_id][self.region]
        bus = backend.describe_event_bus(self.destination["Arn"].split("/")[-1])
        rules = self.destination.get("FilterArns") or None
        start, end = float(self.event_start_time), float(self.event_end_time)
        for event in list(archive.events):
            if not start <= float(event.get("time", 0)) <= end:
                continue
            for rule in list(bus.rules.values()):
                if rules is not None and rule.arn not in rules:
                    continue
                replayed = dict(event, **{"id": str(uuid.uuid4()), "replay-name": self.name})
                rule.send_to_targets(replayed, transform_input=False)
        self.state = ReplayState.COMPLETED
        self.end_time = unix_time()

    Replay.replay_events = replay_events


FIXES = [
    dynamodb_transactions_validate_then_apply,
    dynamodb_update_item_creates_one_insert,
    dynamodb_streams_retention_and_iterators,
    eventbridge_targets_get_the_whole_event,
    eventbridge_replay_honours_its_window_and_rules,
]

# Importing moto's Step Functions parser takes about a second and 130 MB (it pulls in most of
# moto): these are applied on the first Step Functions request (see moto_server.py), before
# which no state machine exists.
STEPFUNCTIONS_FIXES = [
    stepfunctions_new_task_token_per_attempt,
    stepfunctions_task_errors_are_aws_errors,
    stepfunctions_send_task_failure_keeps_the_cause,
    stepfunctions_executions_keep_their_trace_header,
]


def apply() -> list[str]:
    """Applies every fix but the Step Functions ones; returns the names of all of them."""
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"moto_fixes.py patches moto {MOTO_VERSION} internals, found {moto.__version__}: "
            "check each fix against the new version (the conformance suite says which are still needed)"
        )
    for fix in FIXES:
        fix()
    return [fix.__name__ for fix in FIXES + STEPFUNCTIONS_FIXES]


_stepfunctions_lock = threading.Lock()
_stepfunctions_applied = False


def apply_stepfunctions() -> None:
    """Applies the Step Functions fixes once (called before the first Step Functions request)."""
    global _stepfunctions_applied
    with _stepfunctions_lock:
        if not _stepfunctions_applied:
            for fix in STEPFUNCTIONS_FIXES:
                fix()
            _stepfunctions_applied = True
