"""The deployment's promises, read from template.yaml: what a district relies on once the stack is up.

A template typo is only found at deploy time, in someone's AWS account, so the promises are checked here by
parsing the template: the runtime the package is built for, where events go, what the role may touch, that
student data is private, encrypted and expires, that every failure reaches a human, and that the names the
code uses (tables, metrics, log fields) are the names the template wires up.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file  # type: ignore[import-untyped]
from cfnlint.decode.cfn_yaml import load  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"

#: What the code emits (namespace ProgramsBridge, dimension feed): the dashboard must show every one.
METRICS = {
    *("RowsRead", "RowsRejected", "RowsSent", "Exits", "DuplicateRisks", "Held", "Missing"),
    *("FilesRejected", "FilesDelivered", "DeliveryFailures", "DeliverySeconds", "RunFailures", "ConfigErrors"),
    *("FilesRepeated", "FilesSuperseded"),
}
DATA_SERVICES = ("s3", "dynamodb", "secretsmanager", "sns", "sqs", "kms")


@cache
def template() -> dict[str, Any]:
    """The template with Fn::ForEach expanded for the parameters' defaults, as CloudFormation would."""
    raw: dict[str, Any] = load(str(TEMPLATE))
    resources: dict[str, Any] = {}
    for key, value in raw["Resources"].items():
        if key.startswith("Fn::ForEach::"):
            resources.update(_for_each(value, raw["Parameters"]))
        else:
            resources[key] = value
    return {**raw, "Resources": resources}


def _for_each(loop: list[Any], parameters: dict[str, Any]) -> dict[str, Any]:
    name, collection, fragment = loop
    if isinstance(collection, dict):  # {"Ref": "Feeds"}: a CommaDelimitedList parameter's default
        collection = parameters[collection["Ref"]]["Default"].split(",")
    expanded: dict[str, Any] = {}
    for value in collection:
        for key, body in fragment.items():
            expanded[_substitute(key, name, value)] = _substitute(body, name, value)
    return expanded


def _substitute(node: Any, name: str, value: str) -> Any:
    if isinstance(node, str):
        return node.replace("${" + name + "}", value).replace("&{" + name + "}", re.sub(r"[^A-Za-z0-9]", "", value))
    if isinstance(node, dict):
        return {_substitute(k, name, value): _substitute(v, name, value) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(item, name, value) for item in node]
    return node


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template()["Resources"].items() if r["Type"] == kind}


def props(name: str) -> dict[str, Any]:
    properties: dict[str, Any] = template()["Resources"][name]["Properties"]
    return properties


def default(parameter: str) -> Any:
    return template()["Parameters"][parameter]["Default"]


def text(node: Any) -> str:
    """A resource reference or ARN as one comparable string: Sub's pattern, "X.Arn" for GetAtt, "X" for Ref."""
    if isinstance(node, str):
        return node
    (function, argument), *_ = node.items()
    if function == "Fn::Sub":
        return argument if isinstance(argument, str) else argument[0]
    if function == "Fn::GetAtt":
        return ".".join(argument) if isinstance(argument, list) else argument
    if function == "Ref":
        return str(argument)
    raise AssertionError(f"unexpected intrinsic {function}")


def as_list(node: Any) -> list[Any]:
    return node if isinstance(node, list) else [node]


def role_statements() -> list[dict[str, Any]]:
    policies = props("PipelineFunction")["Policies"]
    # Only inline documents: a SAM policy template or managed policy would grant more than the code needs.
    assert all(isinstance(p, dict) and "Statement" in p for p in policies), policies
    return [statement for policy in policies for statement in policy["Statement"]]


def grants() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for statement in role_statements():
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                yield action, text(resource), statement.get("Condition", {})


def resources_for(action: str) -> set[str]:
    return {resource for granted, resource, _ in grants() if granted == action}


# ------------------------------------------------------------------------------------------- the function


def test_function_runs_the_pipeline_handler_on_python313_arm64() -> None:
    function = props("PipelineFunction")
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Tracing"] == "Active"
    assert function["Timeout"] == {"Ref": "FunctionTimeout"} and default("FunctionTimeout") == 900
    assert function["MemorySize"] == {"Ref": "FunctionMemory"} and default("FunctionMemory") == 1024
    assert template()["Parameters"]["FunctionTimeout"]["MaxValue"] <= 900  # Lambda's limit

    module, _, attribute = function["Handler"].rpartition(".")
    source = ROOT / function["CodeUri"] / (module.replace(".", "/") + ".py")
    assert source.is_file(), f"Handler {function['Handler']} names no module under CodeUri"
    tree = ast.parse(source.read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    assert attribute in defined


def test_environment_names_the_resources_and_powertools_settings() -> None:
    env = props("PipelineFunction")["Environment"]["Variables"]
    assert env["LEDGER_TABLE"] == {"Ref": "LedgerTable"}
    assert env["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    assert env["NOTIFY_TOPIC_ARN"] == {"Ref": "NotifyTopic"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "programs-bridge"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "ProgramsBridge"
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"} and default("LogLevel") == "INFO"


def test_sam_cli_settings_let_the_template_build_and_deploy() -> None:
    """Without these, `sam build` chokes on Fn::ForEach and CloudFormation refuses the transform."""
    settings = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]
    for command in ("build", "validate", "package", "deploy", "sync"):
        assert settings[command]["parameters"]["language_extensions"] is True, command
    capabilities = settings["deploy"]["parameters"]["capabilities"].split()
    assert {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"} <= set(capabilities)
    assert template()["Resources"]["PipelineFunction"]["Metadata"]["BuildMethod"] == "makefile"
    assert "build-PipelineFunction:" in (ROOT / "Makefile").read_text()


# -------------------------------------------------------------------------------------------- event path


def test_exports_dropped_under_incoming_reach_the_function_through_a_queue_with_a_dead_letter_queue() -> None:
    [notification] = props("DataBucket")["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "incoming/"}]
    assert text(notification["Queue"]) == "DropQueue.Arn"

    [event] = props("PipelineFunction")["Events"].values()
    assert event["Type"] == "SQS"
    assert text(event["Properties"]["Queue"]) == "DropQueue.Arn"
    assert 1 <= event["Properties"]["BatchSize"] <= 10
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= 2

    queue = props("DropQueue")
    assert text(queue["RedrivePolicy"]["deadLetterTargetArn"]) == "DeadLetterQueue.Arn"
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    # Lambda's guidance: at least six times the function timeout, for every timeout the parameter allows.
    assert queue["VisibilityTimeout"] >= 6 * template()["Parameters"]["FunctionTimeout"]["MaxValue"]
    for name in ("DropQueue", "DeadLetterQueue"):
        assert props(name).get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props(name)


def test_only_this_buckets_notifications_may_enter_the_queue() -> None:
    bucket = template()["Resources"]["DataBucket"]
    assert bucket["DependsOn"] == "DropQueuePolicy"  # the policy exists before S3 tests the target
    [statement] = props("DropQueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    # The policy cannot !Ref the bucket (cycle), so it rebuilds the name: it must be the very same name.
    source_arn = statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    bucket_name = props("DataBucket")["BucketName"]["Fn::Sub"]
    assert source_arn[0] == "arn:${AWS::Partition}:s3:::" + bucket_name[0]
    assert source_arn[1] == bucket_name[1]


# ------------------------------------------------------------------------------------------ student data


def test_bucket_is_private_encrypted_versioned_and_refuses_plain_http() -> None:
    bucket = props("DataBucket")
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    [encryption] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"

    policy = props("DataBucketPolicy")
    assert policy["Bucket"] == {"Ref": "DataBucket"}
    [deny] = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {text(r) for r in deny["Resource"]} == {"DataBucket.Arn", "${DataBucket.Arn}/*"}


def test_exports_and_reports_expire_and_so_do_their_old_versions() -> None:
    rules = props("DataBucket")["LifecycleConfiguration"]["Rules"]
    assert all(rule["Status"] == "Enabled" for rule in rules)
    expiry = {rule["Prefix"]: rule["ExpirationInDays"] for rule in rules if "Prefix" in rule}
    raw = {"Ref": "RawExportRetentionDays"}
    assert expiry == {"incoming/": raw, "processed/": raw, "rejected/": raw, "reports/": {"Ref": "ReportRetentionDays"}}
    assert (default("RawExportRetentionDays"), default("ReportRetentionDays")) == (30, 400)

    [everywhere] = [rule for rule in rules if "Prefix" not in rule and "Filter" not in rule]
    assert everywhere["NoncurrentVersionExpiration"]["NoncurrentDays"] <= 7
    assert everywhere["ExpiredObjectDeleteMarker"] is True
    assert everywhere["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] <= 7


def test_tables_have_the_keys_the_code_uses_and_point_in_time_recovery() -> None:
    ledger, idempotency = props("LedgerTable"), props("IdempotencyTable")
    assert ledger["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert idempotency["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    # Powertools Idempotency's default expiry attribute, so DynamoDB removes spent records by itself.
    assert idempotency["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    for table in (ledger, idempotency):
        assert {d["AttributeType"] for d in table["AttributeDefinitions"]} == {"S"}
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert table["SSESpecification"]["SSEEnabled"] is True
    assert template()["Resources"]["LedgerTable"]["DeletionPolicy"] == "Retain"


# ------------------------------------------------------------------------------------------------- IAM


def test_role_grants_no_wildcard_action_and_no_wildcard_resource_on_data() -> None:
    for action, resource, _ in grants():
        service = action.split(":", 1)[0]
        assert "*" not in action, action
        if service in DATA_SERVICES:
            assert resource != "*", action


def test_role_reaches_each_bucket_prefix_only_for_what_the_pipeline_does_there() -> None:
    def prefixes(action: str) -> set[str]:
        return {r.removeprefix("${DataBucket.Arn}/") for r in resources_for(action)}

    # Reads: the drops, the configs, and a run's own frozen programs.txt and report when it resumes.
    assert prefixes("s3:GetObject") == {"incoming/*", "config/*", "processed/*", "reports/*"}
    assert prefixes("s3:GetObjectVersion") == {"incoming/*"}
    assert prefixes("s3:PutObject") == {"processed/*", "rejected/*", "reports/*"}
    assert prefixes("s3:DeleteObject") == {"incoming/*"}
    # The one bucket-level action: listing, which also makes S3 answer 404 rather than 403 for a missing key.
    assert {(a, r) for a, r, _ in grants() if r == "DataBucket.Arn"} == {("s3:ListBucket", "DataBucket.Arn")}


def test_role_reaches_tables_topic_and_secrets_only_by_name() -> None:
    ledger_actions = {a for a, r, _ in grants() if r == "LedgerTable.Arn"}
    item_actions = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert ledger_actions == {*item_actions, "dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem"}
    idempotency_actions = {a for a, r, _ in grants() if r == "IdempotencyTable.Arn"}
    assert idempotency_actions == item_actions
    assert not any(a.startswith("dynamodb:") and "Table" not in r for a, r, _ in grants())  # no Scan, no "*"

    assert resources_for("secretsmanager:GetSecretValue") == {
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretNamePrefix}*"
    }
    assert default("SecretNamePrefix") == "programs-bridge/"
    assert resources_for("sns:Publish") == {"NotifyTopic"}


# ---------------------------------------------------------------------------------- alerts and alarms


def alarms() -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in resources("AWS::CloudWatch::Alarm").items()}


def test_every_alarm_notifies_the_topic() -> None:
    assert len(alarms()) >= 7
    for name, alarm in alarms().items():
        assert {"Ref": "NotifyTopic"} in alarm["AlarmActions"], name


def test_alarms_fire_on_a_parked_event_a_crash_and_each_failure_the_code_counts() -> None:
    by_metric = {(a.get("Namespace"), a.get("MetricName")): a for a in alarms().values()}
    dead_letters = by_metric["AWS/SQS", "ApproximateNumberOfMessagesVisible"]
    assert dead_letters["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    errors = by_metric["AWS/Lambda", "Errors"]
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PipelineFunction"}}]

    # Metrics Insights sums every feed, whatever other dimensions Powertools adds.
    insights = [q["Expression"] for a in alarms().values() for q in a.get("Metrics", ())]
    summed = {m[1] for q in insights if (m := re.fullmatch(r"SELECT SUM\((\w+)\) FROM ProgramsBridge", q))}
    assert len(summed) == len(insights)
    assert summed == {"RunFailures", "ConfigErrors", "FilesRejected", "DeliveryFailures"}
    for alarm in (dead_letters, errors, *(a for a in alarms().values() if "Metrics" in a)):
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_each_listed_feed_has_an_alarm_for_a_night_without_delivery() -> None:
    feeds = default("Feeds").split(",")
    silent = {n: a for n, a in alarms().items() if a.get("MetricName") == "FilesDelivered"}
    assert len(silent) == len(feeds)
    for alarm in silent.values():
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        # Exactly the dimensions Powertools writes: the feed and the service name.
        assert dimensions == {"feed": dimensions["feed"], "service": "programs-bridge"}
        assert alarm["Namespace"] == "ProgramsBridge"
        assert alarm["TreatMissingData"] == "breaching"  # no data at all is the failure being watched for
        assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["Statistic"]) == ("LessThanThreshold", 1, "Sum")
        # MaxHoursWithoutDelivery hourly periods, all of them empty.
        assert alarm["Period"] == 3600
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == {"Ref": "MaxHoursWithoutDelivery"}
    assert sorted(d["Value"] for a in silent.values() for d in a["Dimensions"] if d["Name"] == "feed") == sorted(feeds)
    assert default("MaxHoursWithoutDelivery") == 26
    # CloudWatch refuses an hourly alarm looking back more than 7 days.
    assert template()["Parameters"]["MaxHoursWithoutDelivery"]["MaxValue"] <= 168


def test_alarms_can_publish_to_the_encrypted_topic_and_email_is_optional() -> None:
    assert props("NotifyTopic")["KmsMasterKeyId"] == {"Ref": "ObservabilityKey"}
    key = props("ObservabilityKey")
    assert key["EnableKeyRotation"] is True
    [cloudwatch] = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert {"kms:GenerateDataKey", "kms:Decrypt"} <= {a for a, r, _ in grants() if r == "ObservabilityKey.Arn"}

    subscription = template()["Resources"]["AlertEmailSubscription"]
    assert subscription["Condition"] == "HasAlertEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlertEmail"}
    assert template()["Conditions"]["HasAlertEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]}
    assert default("AlertEmail") == ""


# ------------------------------------------------------------------------------------ logs and dashboard


def test_logs_go_to_a_group_with_retention_that_the_key_may_encrypt() -> None:
    assert props("PipelineFunction")["LoggingConfig"]["LogGroup"] == {"Ref": "FunctionLogGroup"}
    group = props("FunctionLogGroup")
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"} and default("LogRetentionDays") == 90
    # The key lets CloudWatch Logs use it for this one group: the names must agree or the deploy fails.
    [logs] = [s for s in props("ObservabilityKey")["KeyPolicy"]["Statement"] if "Condition" in s]
    context = logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Sub"]
    assert context.endswith(":log-group:" + text(group["LogGroupName"]))


def test_saved_queries_find_last_runs_errors_and_duplicate_risks() -> None:
    queries = {q["QueryString"]: q for q in (r["Properties"] for r in resources("AWS::Logs::QueryDefinition").values())}
    # A failed run logs "run failed" instead of "run finished": the list of runs must show both.
    wanted = ('message in ["run finished", "run failed"]', 'level = "ERROR"', "counts.duplicate_risks > 0")
    for clause in wanted:
        [query] = [q for s, q in queries.items() if clause in s]
        assert query["LogGroupNames"] == [{"Ref": "FunctionLogGroup"}]
    [last_runs] = [s for s in queries if wanted[0] in s]
    for field in ("feed", "run_id", "status", "counts.rows_read", "counts.rows_sent"):
        assert re.search(rf"\bfields\b.*\b{re.escape(field)}\b", last_runs), field


def test_dashboard_shows_every_metric_for_every_feed_and_the_queues_and_function() -> None:
    [dashboard] = resources("AWS::CloudWatch::Dashboard").values()
    widgets = dashboard["Properties"]["DashboardBody"]["Fn::ToJsonString"]["widgets"]
    lines = [line for w in widgets if w["type"] == "metric" for line in w["properties"]["metrics"]]
    searches = [line[0]["expression"] for line in lines if isinstance(line[0], dict)]
    shown = set()
    for search in searches:
        # No dimension schema: a SEARCH over the namespace draws one line per feed, new feeds included.
        found = re.fullmatch(r"SEARCH\('Namespace=\"ProgramsBridge\" MetricName=\"(\w+)\"', '\w+', \d+\)", search)
        assert found, search
        shown.add(found[1])
    assert shown == METRICS
    plain = [line for line in lines if isinstance(line[0], str)]
    assert {(line[0], line[1]) for line in plain} >= {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Duration"),
    }
    queues = {text(line[3]) for line in plain if line[0] == "AWS/SQS"}
    assert queues == {"DropQueue.QueueName", "DeadLetterQueue.QueueName"}


# ---------------------------------------------------------------------------------------------- linting


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cfn_lint_finds_nothing() -> None:
    assert [str(match) for match in lint_file(TEMPLATE)] == []
