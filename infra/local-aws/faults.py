"""Faults of the bus, switched on for a while through the launcher, to test what AWS can do to us.

POST /_local/faults {"put_events": {"seconds": S, "error_code": "ThrottlingException"}} makes
every EventBridge PutEvents request for the next S seconds answer as EventBridge does when it
refuses every entry: HTTP 200, `FailedEntryCount` equal to the number of entries, and each
result entry carrying `ErrorCode` and `ErrorMessage` instead of an `EventId`. Retryable codes
are `InternalFailure` and `ThrottlingException`
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsResultEntry.html).
Every caller of the emulator sees it: the outbox relays, and Step Functions' optimized putEvents
integration, whose task then fails with `EventBridge.FailedEntry` as AWS documents
(https://docs.aws.amazon.com/step-functions/latest/dg/connect-eventbridge.html).

GET /_local/faults says what is switched on and how many entries were refused so far, so a test
can prove its fault happened. `{"put_events": {"seconds": 0}}` switches it off.
"""

import json
import threading
import time

RETRYABLE = {"InternalFailure", "ThrottlingException"}


class BusFaults:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.until = 0.0
        self.error_code = "ThrottlingException"
        self.refused_entries = 0
        self.refused_requests = 0

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        if path == "/_local/faults":
            if environ.get("REQUEST_METHOD") == "POST":
                return self.configure(environ, start_response)
            return self.respond(start_response, self.state())
        if environ.get("HTTP_X_AMZ_TARGET", "") == "AWSEvents.PutEvents" and self.active():
            return self.refuse(environ, start_response)
        return self.app(environ, start_response)

    def active(self) -> bool:
        with self.lock:
            return time.monotonic() < self.until

    def state(self) -> dict:
        with self.lock:
            remaining = max(0.0, self.until - time.monotonic())
            return {
                "put_events": {"remaining_seconds": round(remaining, 3), "error_code": self.error_code},
                "refused_entries": self.refused_entries,
                "refused_requests": self.refused_requests,
            }

    def configure(self, environ, start_response):
        try:
            body = json.loads(read_body(environ) or b"{}")
            fault = body["put_events"]
            seconds = float(fault["seconds"])
            code = fault.get("error_code", "ThrottlingException")
            if seconds < 0 or code not in RETRYABLE:
                raise ValueError(f"seconds >= 0 and error_code one of {sorted(RETRYABLE)}")
        except (ValueError, KeyError, TypeError) as error:
            return self.respond(start_response, {"error": f"bad fault: {error}"}, "400 Bad Request")
        with self.lock:
            self.until = time.monotonic() + seconds
            self.error_code = code
        return self.respond(start_response, self.state())

    def refuse(self, environ, start_response):
        try:
            entries = json.loads(read_body(environ) or b"{}").get("Entries", [])
        except ValueError:
            entries = []
        with self.lock:
            code = self.error_code
            self.refused_entries += len(entries)
            self.refused_requests += 1
        message = "Rate exceeded" if code == "ThrottlingException" else "Internal failure"
        body = {
            "FailedEntryCount": len(entries),
            "Entries": [{"ErrorCode": code, "ErrorMessage": message} for _ in entries],
        }
        return self.respond(start_response, body, content_type="application/x-amz-json-1.1")

    @staticmethod
    def respond(start_response, value, status="200 OK", content_type="application/json"):
        raw = json.dumps(value).encode()
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(raw)))])
        return [raw]


def read_body(environ) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""
