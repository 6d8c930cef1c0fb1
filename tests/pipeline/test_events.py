"""The sample events in events/ (also used with `sam local invoke`) parse into what the pipeline processes."""

import json
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from programs_bridge.pipeline.events import Ignored, ObjectRef, continuation_body, objects_in

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((EVENTS / name).read_text())
    return data


def test_an_s3_notification_via_sqs_names_the_dropped_export_with_its_key_decoded() -> None:
    [ref] = objects_in(load("sqs-s3-put.json"))
    assert isinstance(ref, ObjectRef)
    assert ref.key == "incoming/district/Nightly Programs Export + 504.csv"
    assert ref.feed == "district"
    assert ref.name == "Nightly Programs Export + 504.csv"
    assert ref.version == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert ref.idempotency_data() == {
        "bucket": "programs-bridge-exports",
        "key": "incoming/district/Nightly Programs Export + 504.csv",
        "version": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        "continuation": "",  # S3's own notification, not a continuation the pipeline queued
    }


def test_a_direct_s3_event_gives_the_same_object() -> None:
    assert list(objects_in(load("s3-put.json"))) == list(objects_in(load("sqs-s3-put.json")))


def test_the_s3_test_event_is_ignored_with_a_reason() -> None:
    [ignored] = objects_in(load("sqs-s3-test-event.json"))
    assert isinstance(ignored, Ignored) and "s3:TestEvent" in ignored.reason


def test_folders_and_other_prefixes_are_ignored() -> None:
    reasons = [item.reason for item in objects_in(load("s3-ignored.json")) if isinstance(item, Ignored)]
    assert reasons == ["a folder placeholder, not a file", "key is not under incoming/, resolutions/ or illuminate/"]


def test_an_unversioned_bucket_falls_back_to_the_etag() -> None:
    event = load("s3-put.json")
    del event["Records"][0]["s3"]["object"]["versionId"]  # type: ignore[index]
    [ref] = objects_in(event)
    assert isinstance(ref, ObjectRef)
    assert ref.version_id is None and ref.version == "0123456789abcdef0123456789abcdef"


def test_a_file_directly_under_incoming_is_ignored() -> None:
    event = load("s3-put.json")
    event["Records"][0]["s3"]["object"]["key"] = "incoming/export.csv"  # type: ignore[index]
    [ignored] = objects_in(event)
    assert isinstance(ignored, Ignored) and "incoming/<feed>/" in ignored.reason


@pytest.mark.parametrize("feed", ["district\n", "district\r", ".hidden", "a" * 65, "dis trict"])
def test_a_feed_folder_name_outside_the_safe_alphabet_is_ignored_with_a_reason(feed: str) -> None:
    event = load("s3-put.json")
    event["Records"][0]["s3"]["object"]["key"] = quote_plus(f"incoming/{feed}/export.csv", safe="/")  # type: ignore[index]
    [ignored] = objects_in(event)
    assert isinstance(ignored, Ignored) and "whose name is no feed's" in ignored.reason and ignored.misplaced


def test_a_continuation_names_the_same_object_version_with_a_token_of_its_own() -> None:
    [ref] = objects_in(load("sqs-s3-put.json"))
    assert isinstance(ref, ObjectRef)
    body = continuation_body(ref, "token-1")
    [again] = list(objects_in(json.loads(json.dumps(body))))  # through the queue as JSON text
    assert isinstance(again, ObjectRef)
    assert (again.bucket, again.key, again.version_id, again.etag) == (ref.bucket, ref.key, ref.version_id, ref.etag)
    assert again.continuation == "token-1"
    # A different idempotency key from the original notification's, so it is not taken for a redelivery.
    assert again.idempotency_data() == {**ref.idempotency_data(), "continuation": "token-1"}
