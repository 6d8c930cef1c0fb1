import boto3

from programs_bridge.local.moto_server import MotoServer


def test_boto3_reaches_the_moto_server_through_aws_endpoint_url(aws: MotoServer) -> None:
    s3 = boto3.client("s3")
    assert s3.meta.endpoint_url == aws.endpoint
    s3.create_bucket(Bucket="district-exports")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["district-exports"]


def test_each_test_starts_from_an_empty_account(aws: MotoServer) -> None:
    assert boto3.client("s3").list_buckets()["Buckets"] == []
