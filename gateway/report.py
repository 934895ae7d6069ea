"""Folding a photo's RestoreEvents into the JSON the HTTP API returns."""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict
from revive.v1 import gateway_pb2

#: HTTP status for a request none of whose photos succeeded, by gRPC code.
HTTP_STATUS_FOR_CODE = {
    "INVALID_ARGUMENT": 422,
    "UNAVAILABLE": 503,
    "RESOURCE_EXHAUSTED": 503,
    "DEADLINE_EXCEEDED": 504,
}


class PhotoReport:
    """What is known about one photo so far."""

    def __init__(self, index: int, filename: str) -> None:
        self.index, self.filename = index, filename
        self.status = "queued"
        self.stage = ""
        self.progress: dict[str, float] = {}
        self.damage: dict[str, Any] | None = None
        self.candidates: dict[int, dict[str, Any]] = {}
        self.ranking: list[int] = []
        self.upscale = 1
        self.error: dict[str, str] | None = None

    def apply(self, event: gateway_pb2.RestoreEvent) -> None:
        """Fold one event in. A finished photo's status is final: a cancelled job's in-flight RPCs still
        report (a progress tick, the CANCELLED failure their cancellation causes) after the photo says cancelled."""
        if self.finished:
            return
        kind = event.WhichOneof("event")
        if kind == "progress":
            self.status = "running"
            self.stage = gateway_pb2.Stage.Name(event.progress.stage).lower()
            self.progress[self.stage] = round(event.progress.fraction, 4)
        elif kind == "damage":
            self.damage = MessageToDict(event.damage, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        elif kind == "candidate":
            candidate = event.candidate
            self.candidates[candidate.seed] = {
                "seed": candidate.seed,
                "url": candidate.url,
                "width": candidate.image.width,
                "height": candidate.image.height,
                "scores": MessageToDict(candidate.scores, preserving_proto_field_name=True, always_print_fields_with_no_presence=True),
                "identity_doubtful": candidate.identity_doubtful,
            }
        elif kind == "failed":
            self.status = "failed"
            self.error = {"code": event.failed.code, "message": event.failed.message}
        elif kind == "done":
            self.status = "done"
            self.ranking = list(event.done.ranking)
            self.upscale = event.done.upscale

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "PhotoReport":
        """The inverse of to_json, for jobs read back from disk."""
        report = cls(body["index"], body["filename"])
        report.status, report.stage = body["status"], body["stage"]
        report.progress, report.damage = body["progress"], body["damage"]
        report.upscale, report.error = body["upscale"], body.get("error")
        report.candidates = {c["seed"]: c for c in body["candidates"]}
        report.ranking = [c["seed"] for c in body["candidates"]] if report.status == "done" else []
        return report

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def cancel(self) -> None:
        """The job was cancelled before this photo was finished: it will not be, and says so."""
        if not self.finished:
            self.status = "cancelled"
            self.error = {"code": "CANCELLED", "message": "the job was cancelled before this photo was finished"}

    def to_json(self) -> dict[str, Any]:
        order = self.ranking or list(self.candidates)
        body: dict[str, Any] = {
            "index": self.index,
            "filename": self.filename,
            "status": self.status,
            "stage": self.stage,
            "progress": self.progress,
            "damage": self.damage,
            "upscale": self.upscale,
            "candidates": [self.candidates[seed] for seed in order if seed in self.candidates],
        }
        if self.error:
            body["error"] = self.error
        return body


def request_status(reports: list[PhotoReport]) -> int:
    """200 when any photo succeeded; otherwise the status that best explains the failures."""
    if any(report.status == "done" for report in reports):
        return 200
    codes = {report.error["code"] for report in reports if report.error}
    for code in ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"):
        if code in codes:
            return HTTP_STATUS_FOR_CODE[code]
    if codes == {"INVALID_ARGUMENT"}:
        return 422
    return 502
