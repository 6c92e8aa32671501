"""What the emulator holds, for GET /_local/memory: the counts that make its memory grow in a
long run (DynamoDB items and stream records per table, Step Functions executions and their
history events, SQS messages, EventBridge archive events), and, when the launcher was started
with LOCAL_AWS_TRACEMALLOC=1, the Python allocations by source file (tracemalloc, which slows
moto down: for diagnosis, not for measuring throughput)."""

import os
import tracemalloc


def start() -> None:
    if os.environ.get("LOCAL_AWS_TRACEMALLOC") == "1":
        tracemalloc.start(1)


def _backends(backend_dict):
    for regions in list(backend_dict.values()):
        yield from list(regions.values())


def what_moto_holds() -> dict:
    import sys

    held: dict = {}
    if "moto.dynamodb.models" in sys.modules:
        from moto.dynamodb.models import dynamodb_backends

        tables = {}
        for backend in _backends(dynamodb_backends):
            for name, table in list(backend.tables.items()):
                shard = getattr(table, "stream_shard", None)
                tables[name] = {
                    "items": len(table),
                    "stream_records": len(shard.items) if shard is not None else 0,
                }
        held["dynamodb"] = tables
    if "moto.stepfunctions.parser.models" in sys.modules:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        machines = {}
        for backend in _backends(stepfunctions_parser_backends):
            for machine in list(backend.state_machines):
                executions = list(machine.executions)
                events = 0
                compact = 0
                for execution in executions:
                    worker = getattr(execution, "exec_worker", None)
                    env = getattr(worker, "env", None)
                    manager = getattr(env, "event_manager", None)
                    closed = getattr(manager, "count", None)  # kept compact (moto_speedups)
                    compact += closed is not None
                    events += closed if closed is not None else len(getattr(manager, "_history_event_list", ()))
                running = sum(1 for e in executions if str(e.status) == "RUNNING")
                machines[machine.name] = {
                    "executions": len(executions),
                    "running": running,
                    "history_events": events,
                    "kept_compact": compact,
                }
        held["stepfunctions"] = machines
    if "moto.sqs.models" in sys.modules:
        from moto.sqs.models import sqs_backends

        queues = {}
        for backend in _backends(sqs_backends):
            for name, queue in list(backend.queues.items()):
                queues[name] = {
                    "messages": len(queue._messages),
                    "deleted_receipt_handles": len(queue.deleted_messages),
                }
        held["sqs"] = queues
    if "moto.events.models" in sys.modules:
        from moto.events.models import events_backends

        held["eventbridge_archives"] = {
            name: len(archive.events)
            for backend in _backends(events_backends)
            for name, archive in list(backend.archives.items())
        }
    if tracemalloc.is_tracing():
        stats = tracemalloc.take_snapshot().statistics("filename")
        held["python_mib_by_file"] = [
            {"file": s.traceback[0].filename.split("site-packages/")[-1], "mib": round(s.size / 2**20, 1)}
            for s in stats[:30]
        ]
        held["python_mib_traced"] = round(sum(s.size for s in stats) / 2**20, 1)
    return held


def rss_mib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0
