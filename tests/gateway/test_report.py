"""A photo's report: what the HTTP API shows of it follows its events, and a finished photo stays finished."""

from __future__ import annotations

from revive.v1 import gateway_pb2

from gateway.report import PhotoReport


def progress(stage: int, fraction: float) -> gateway_pb2.RestoreEvent:
    return gateway_pb2.RestoreEvent(photo_index=0, progress=gateway_pb2.Progress(stage=stage, fraction=fraction))


def failed(code: str) -> gateway_pb2.RestoreEvent:
    return gateway_pb2.RestoreEvent(photo_index=0, failed=gateway_pb2.PhotoFailed(code=code, message="stopped"))


def test_events_move_a_photo_from_queued_to_running_to_failed():
    report = PhotoReport(0, "a.jpg")
    assert report.status == "queued"
    report.apply(progress(gateway_pb2.GENERATE, 0.5))
    assert (report.status, report.stage, report.progress) == ("running", "generate", {"generate": 0.5})
    report.apply(failed("UNAVAILABLE"))
    assert report.status == "failed" and report.error["code"] == "UNAVAILABLE"


def test_a_cancelled_photo_stays_cancelled_when_its_stopped_rpcs_still_report():
    report = PhotoReport(0, "a.jpg")
    report.apply(progress(gateway_pb2.GENERATE, 0.25))
    report.cancel()
    report.apply(progress(gateway_pb2.GENERATE, 0.5))
    report.apply(failed("CANCELLED"))
    assert report.status == "cancelled" and report.error["code"] == "CANCELLED"
    assert report.progress == {"generate": 0.25}
