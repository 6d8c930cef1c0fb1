"""The deployment's promises, read from template.yaml: what a district relies on once the stack is up.

A template typo is only found at deploy time, in someone's AWS account, so the promises are checked here by
parsing the template: the runtime the package is built for, where events go, what the role may touch, that
student data is private, encrypted and expires, that every failure reaches a human, and that the names the
code uses (tables, metrics, log fields) are the names the template wires up.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file  # type: ignore[import-untyped]
from cfnlint.decode.cfn_yaml import load  # type: ignore[import-untyped]

from programs_bridge.pipeline.events import PREFIXES
from programs_bridge.pipeline.observe import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"

DATA_SERVICES = ("s3", "dynamodb", "secretsmanager", "sns", "sqs", "kms")

#: The handler's measured peak RSS at the largest supported export, 2M rows: a rejected file with a finding on
#: every row (docs/deploy.md, "Sizing the function"; a delivered one peaked at 168 MB).
PEAK_RSS_MB_AT_LARGEST_EXPORT = 168  # docs/deploy.md, Sizing the function: the worst measured case

# ------------------------------------------------------------------- the template as the service reads it
#
# Lint accepts Fn::ForEach and any Fn::Sub text, but only CloudFormation evaluates them, so both are rendered
# here as the service documents them; the rest of this file reads the rendered form.


@cache
def expanded(parameters: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """The template with every Fn::ForEach expanded, for the parameters' defaults overridden by ``parameters``.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-foreach.html
    """
    raw: dict[str, Any] = load(str(TEMPLATE))
    values = dict(parameters)
    resources: dict[str, Any] = {}
    loops = [key for key in raw["Resources"] if key.startswith("Fn::ForEach::")]
    for key, value in raw["Resources"].items():
        if key in loops:
            for logical_id, body in _for_each(value, raw["Parameters"], values).items():
                # A loop's output must not collide with a written resource, nor with another loop's output.
                assert logical_id not in resources and logical_id not in raw["Resources"], logical_id
                resources[logical_id] = body
        else:
            assert key not in resources, key
            resources[key] = value
    return {**raw, "Resources": resources}


def template() -> dict[str, Any]:
    return expanded()


def parameter_value(name: str, parameters: dict[str, Any], values: dict[str, str]) -> Any:
    """What Ref returns for a parameter: a CommaDelimitedList splits on commas, each member space-trimmed.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html
    """
    declared = parameters[name]
    value = values.get(name, declared.get("Default"))
    assert value is not None, f"parameter {name} has no value"
    if declared["Type"] == "CommaDelimitedList":
        return [member.strip() for member in str(value).split(",")]
    return value


def _for_each(loop: list[Any], parameters: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    identifier, collection, fragment = loop
    assert re.fullmatch(r"[A-Za-z0-9]+", identifier), identifier
    if isinstance(collection, dict):  # the documented alternative to a literal list: a Ref to a CommaDelimitedList
        [(function, name)] = collection.items()
        assert function == "Ref" and parameters[name]["Type"] == "CommaDelimitedList", collection
        collection = parameter_value(name, parameters, values)
    assert isinstance(collection, list) and all(isinstance(item, str) for item in collection), collection
    dollar, ampersand = "${" + identifier + "}", "&{" + identifier + "}"
    out: dict[str, Any] = {}
    for key, body in fragment.items():
        # The OutputKey must name the identifier; &{} (the collection value without its non-alphanumeric
        # characters) is the form documented for OutputKey, so this template keeps it there.
        assert dollar in key or ampersand in key, key
        assert ampersand not in json.dumps(body), f"{key}: &{{}} outside the OutputKey"
        assert "Fn::ForEach::" not in json.dumps(body), f"{key}: nested loops are not expanded here"
        for value in collection:
            logical_id = _substitute(key, identifier, value)
            assert re.fullmatch(r"[A-Za-z0-9]+", logical_id), f"{logical_id}: logical IDs are alphanumeric"
            assert logical_id not in out, f"{logical_id}: two collection values give one logical ID"
            out[logical_id] = _substitute(body, identifier, value)
    return out


def _substitute(node: Any, identifier: str, value: str) -> Any:
    """Every ${Identifier} becomes the value, every &{Identifier} the value's letters and digits only."""
    if isinstance(node, str):
        stripped = re.sub(r"[^A-Za-z0-9]", "", value)
        return node.replace("${" + identifier + "}", value).replace("&{" + identifier + "}", stripped)
    if isinstance(node, dict):
        return {_substitute(k, identifier, value): _substitute(v, identifier, value) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(item, identifier, value) for item in node]
    return node


# Plausible deploy-time values: the pseudo parameters and the physical names CloudFormation would generate.
ACCOUNT = "123456789012"
REGION = "eu-west-1"
STACK = "programs-bridge-district"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::StackName": STACK,
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/4f2e9a10-8c3b-11f0-9a4e-0a1b2c3d4e5f",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}


def generated_name(logical_id: str) -> str:
    return f"{STACK}-{logical_id}-1A2B3C4D5E6F"


def ref(name: str, t: dict[str, Any] | None = None) -> Any:
    """What Ref returns for a pseudo parameter, a parameter (its default) or a resource (plausibly)."""
    t = t or template()
    if name in PSEUDO:
        return PSEUDO[name]
    if name in t["Parameters"]:
        return parameter_value(name, t["Parameters"], {})
    resource = t["Resources"].get(name)
    assert resource is not None, f"Ref {name}: no such parameter, pseudo parameter or resource"
    properties = resource.get("Properties", {})
    named = {
        "AWS::S3::Bucket": "BucketName",
        "AWS::Logs::LogGroup": "LogGroupName",
        "AWS::CloudWatch::Alarm": "AlarmName",
        "AWS::CloudWatch::Dashboard": "DashboardName",
    }
    kind = resource["Type"]
    if kind in named and named[kind] in properties:
        return evaluate(properties[named[kind]], t)
    generated = {
        "AWS::SQS::Queue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{generated_name(name)}",
        "AWS::Serverless::Function": generated_name(name),
        "AWS::DynamoDB::Table": generated_name(name),
        "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{generated_name(name)}",
        "AWS::KMS::Key": "0f6e2d4c-1b3a-4c5d-8e7f-9a0b1c2d3e4f",
    }
    assert kind in generated, f"Ref {name}: no plausible value for a {kind}"
    return generated[kind]


def get_att(name: str, attribute: str, t: dict[str, Any] | None = None) -> str:
    t = t or template()
    resource = t["Resources"].get(name)
    assert resource is not None, f"GetAtt {name}.{attribute}: no such resource"
    kind = resource["Type"]
    arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:{{}}"
    attributes = {
        ("AWS::S3::Bucket", "Arn"): lambda: f"arn:aws:s3:::{ref(name, t)}",
        ("AWS::SQS::Queue", "Arn"): lambda: arn.format("sqs", generated_name(name)),
        ("AWS::SQS::Queue", "QueueName"): lambda: generated_name(name),
        ("AWS::DynamoDB::Table", "Arn"): lambda: arn.format("dynamodb", "table/" + generated_name(name)),
        ("AWS::KMS::Key", "Arn"): lambda: arn.format("kms", "key/" + ref(name, t)),
        ("AWS::CloudWatch::Alarm", "Arn"): lambda: arn.format("cloudwatch", "alarm:" + ref(name, t)),
        ("AWS::Logs::LogGroup", "Arn"): lambda: arn.format("logs", "log-group:" + ref(name, t) + ":*"),
        ("AWS::Serverless::Function", "Arn"): lambda: arn.format("lambda", "function:" + generated_name(name)),
    }
    assert (kind, attribute) in attributes, f"GetAtt {name}.{attribute}: no plausible value for a {kind}"
    return attributes[kind, attribute]()


def evaluate(node: Any, t: dict[str, Any] | None = None) -> Any:
    """The intrinsic functions this template uses, evaluated as CloudFormation documents them."""
    t = t or template()
    if isinstance(node, list):
        return [evaluate(item, t) for item in node]
    if not isinstance(node, dict):
        return node
    [(function, argument)] = node.items()
    if function == "Ref":
        return ref(argument, t)
    if function == "Fn::GetAtt":
        resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
        return get_att(resource, attribute, t)
    if function == "Fn::Sub":
        return fn_sub(argument, t)
    if function == "Fn::Select":
        index, items = argument
        return evaluate(items, t)[int(index)]
    if function == "Fn::Split":
        delimiter, text_ = argument
        return evaluate(text_, t).split(delimiter)
    if function == "Fn::Join":
        delimiter, items = argument
        return delimiter.join(evaluate(items, t))
    raise AssertionError(f"{function} is not evaluated here")


def fn_sub(argument: str | list[Any], t: dict[str, Any] | None = None) -> str:
    """Fn::Sub as documented: ${Var} from the map, else a parameter, pseudo parameter or resource (Ref),
    ${Resource.Attribute} as GetAtt, ${!Text} written out as ${Text}; any other variable fails the deploy.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-sub.html
    """
    t = t or template()
    if isinstance(argument, str):
        pattern, variables = argument, {}
    else:
        pattern, mapping = argument
        variables = {name: evaluate(value, t) for name, value in mapping.items()}

    def replace(match: re.Match[str]) -> str:
        name = match[1]
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            value = variables[name]
        elif name in PSEUDO or name in t["Parameters"] or name in t["Resources"]:
            value = ref(name, t)
        elif (dotted := name.partition("."))[1] and dotted[0] in t["Resources"]:
            value = get_att(dotted[0], dotted[2], t)
        else:
            raise AssertionError(f"Fn::Sub: ${{{name}}} is no parameter, pseudo parameter, resource or attribute")
        assert isinstance(value, str | int), f"Fn::Sub: ${{{name}}} is a {type(value).__name__}, not a string"
        return str(value)

    return re.sub(r"\$\{([^}]*)\}", replace, pattern)


def arn_like(arn: str, pattern: str) -> bool:
    """IAM's ArnLike: each of the ARN's six colon-separated parts matched on its own, * and ? as wildcards."""
    parts, wanted = arn.split(":", 5), pattern.split(":", 5)
    return len(parts) == len(wanted) == 6 and all(map(fnmatch.fnmatchcase, parts, wanted))


def intrinsics(node: Any, function: str) -> Iterator[Any]:
    """Every argument of ``function`` anywhere under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == function:
                yield value
            yield from intrinsics(value, function)
    elif isinstance(node, list):
        for item in node:
            yield from intrinsics(item, function)


def resources(kind: str, t: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in (t or template())["Resources"].items() if r["Type"] == kind}


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
    # Sized for CPU (more than one vCPU's share, 1769 MB), far above the measured memory with its headroom.
    assert function["MemorySize"] == {"Ref": "FunctionMemory"} and default("FunctionMemory") == 2048
    assert default("FunctionMemory") >= max(1.25 * PEAK_RSS_MB_AT_LARGEST_EXPORT, 1769)
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
    assert env["DROP_QUEUE_URL"] == {"Ref": "DropQueue"}  # a queue's Ref is its URL
    assert env["POWERTOOLS_SERVICE_NAME"] == "programs-bridge"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "ProgramsBridge"
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"} and default("LogLevel") == "INFO"


def test_the_function_gets_every_setting_the_pipeline_reads_from_its_environment() -> None:
    """A name the code reads but the template does not set fails only in AWS (the demo and tests set it)."""
    source = "\n".join(path.read_text() for path in (ROOT / "src" / "programs_bridge" / "pipeline").glob("*.py"))
    read = set(re.findall(r"os\.environ(?:\.get\(|\[)\"([A-Z][A-Z0-9_]*)\"", source))
    local_only = {"AWS_ENDPOINT_URL", "PROGRAMS_BRIDGE_WORKDIR"}  # moto in tests and the demo; a default
    local_only.add("AWS_LAMBDA_FUNCTION_NAME")  # set by the Lambda runtime itself
    assert {"LEDGER_TABLE", "IDEMPOTENCY_TABLE"} <= read  # the search finds what it should
    assert read - local_only <= set(props("PipelineFunction")["Environment"]["Variables"])


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
    notifications = props("DataBucket")["NotificationConfiguration"]["QueueConfigurations"]
    # Exports, a clerk's resolutions and reports of Illuminate's records (pipeline/events.py PREFIXES).
    prefixes = [rule["Value"] for n in notifications for rule in n["Filter"]["S3Key"]["Rules"]]
    assert sorted(prefixes) == sorted(PREFIXES.values())
    for notification in notifications:
        assert notification["Event"] == "s3:ObjectCreated:*"
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
    assert expiry == {
        "incoming/": raw, "resolutions/": raw, "illuminate/": raw, "processed/": raw, "rejected/": raw,
        "reports/": {"Ref": "ReportRetentionDays"},
    }  # fmt: skip
    # Reports name student IDs (duplicate risks, missing records) and findings by line: personal data, kept no
    # longer than the exports they describe, and the parameter says so.
    assert (default("RawExportRetentionDays"), default("ReportRetentionDays")) == (30, 30)
    description = template()["Parameters"]["ReportRetentionDays"]["Description"]
    assert "student IDs" in description and "no roster" not in description

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


def test_the_bucket_and_the_ledger_outlive_the_stack_but_not_a_failed_first_create() -> None:
    """RetainExceptOnCreate keeps them on stack deletion and removal, not on the rollback of their own create.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html
    """
    every = template()["Resources"]
    kept = {name for name, resource in every.items() if resource.get("DeletionPolicy", "Delete") != "Delete"}
    assert kept == {"DataBucket", "LedgerTable"}  # the exports and reports; what was sent to Illuminate
    for name in kept:
        assert every[name]["DeletionPolicy"] == "RetainExceptOnCreate", name
        # UpdateReplacePolicy has no RetainExceptOnCreate: an update that replaced them keeps the old one.
        assert every[name]["UpdateReplacePolicy"] == "Retain", name
    assert props("LedgerTable")["DeletionProtectionEnabled"] is True
    # Expiring hashes of event keys: nothing worth keeping once the stack is gone.
    assert every["IdempotencyTable"]["DeletionPolicy"] == every["IdempotencyTable"]["UpdateReplacePolicy"] == "Delete"


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
    drops = {"incoming/*", "resolutions/*", "illuminate/*"}  # exports, resolutions, Illuminate's records
    assert prefixes("s3:GetObject") == drops | {"config/*", "processed/*", "reports/*"}
    assert prefixes("s3:GetObjectVersion") == drops
    assert prefixes("s3:PutObject") == {"processed/*", "rejected/*", "reports/*"}
    assert prefixes("s3:DeleteObject") == drops
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


def test_role_may_bring_a_paused_run_back_through_the_drop_queue_only() -> None:
    # A run stopped at a safe point queues a continuation on DROP_QUEUE_URL; receiving and deleting are the
    # event source's own, from SAM's SQS poller policy.
    queue_grants = {(a, r) for a, r, _ in grants() if a.startswith("sqs:")}
    assert queue_grants == {("sqs:SendMessage", "DropQueue.Arn")}


# ---------------------------------------------------------------------------------- alerts and alarms


def alarms(t: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in resources("AWS::CloudWatch::Alarm", t).items()}


def test_every_alarm_notifies_the_topic() -> None:
    assert len(alarms()) >= 7
    for name, alarm in alarms().items():
        assert {"Ref": "NotifyTopic"} in alarm["AlarmActions"], name


#: The pipeline's metrics that page someone as soon as one feed reports one (a held export among them).
ALARMED_METRICS = ("RunFailures", "ConfigErrors", "FilesRejected", "DeliveryFailures", "ShrunkenExportsHeld")


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
    assert summed == set(ALARMED_METRICS)
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


def test_feed_names_with_punctuation_and_spaces_after_commas_each_get_their_alarm() -> None:
    """Feeds is a CommaDelimitedList (members space-trimmed) and feed names may hold '-', '.' and '_': the
    logical ID takes &{Feed} (letters and digits only), the metric dimension and the alarm's name ${Feed}."""
    t = expanded((("Feeds", "district-123, north.k12,south_high"),))
    silent = {n: a for n, a in alarms(t).items() if a.get("MetricName") == "FilesDelivered"}
    assert set(silent) == {"NoDeliverydistrict123Alarm", "NoDeliverynorthk12Alarm", "NoDeliverysouthhighAlarm"}
    feed_of = {n: {d["Name"]: d["Value"] for d in a["Dimensions"]}["feed"] for n, a in silent.items()}
    assert feed_of["NoDeliverynorthk12Alarm"] == "north.k12"
    assert sorted(feed_of.values()) == ["district-123", "north.k12", "south_high"]
    for name, alarm in silent.items():
        assert fn_sub(alarm["AlarmName"]["Fn::Sub"], t) == f"{STACK}-no-delivery-{feed_of[name]}"
        assert f"reached incoming/{feed_of[name]}/" in fn_sub(alarm["AlarmDescription"]["Fn::Sub"], t)


def test_failure_alarms_are_one_per_metric_from_a_literal_collection() -> None:
    names = {n for n, a in alarms().items() if "Metrics" in a}
    assert names == {f"{m}Alarm" for m in ALARMED_METRICS}
    for name in names:
        metric = name.removesuffix("Alarm")
        alarm = alarms()[name]
        assert fn_sub(alarm["AlarmName"]["Fn::Sub"]) == f"{STACK}-{metric}"
        assert alarm["AlarmDescription"].startswith(f"A feed reported {metric} in the last 5 minutes")


def test_every_sub_in_the_template_names_only_what_cloudformation_can_substitute() -> None:
    rendered = [fn_sub(argument) for argument in intrinsics(template()["Resources"], "Fn::Sub")]
    rendered += [fn_sub(argument) for argument in intrinsics(template()["Outputs"], "Fn::Sub")]
    assert len(rendered) > 20
    # The bucket policy rebuilds the bucket's name (a Ref would be a cycle): the very same name, rendered.
    [statement] = props("DropQueuePolicy")["PolicyDocument"]["Statement"]
    source_arn = evaluate(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
    assert source_arn == get_att("DataBucket", "Arn") == f"arn:aws:s3:::programs-bridge-{ACCOUNT}-4f2e9a10"


def test_alarms_can_publish_to_the_encrypted_topic_and_email_is_optional() -> None:
    assert props("NotifyTopic")["KmsMasterKeyId"] == {"Ref": "ObservabilityKey"}
    key = props("ObservabilityKey")
    assert key["EnableKeyRotation"] is True
    [cloudwatch] = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    # Confused-deputy protection: only this account's alarms, and of those only this stack's.
    condition = cloudwatch["Condition"]
    assert condition["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    [(key, pattern)] = condition["ArnLike"].items()
    assert key == "aws:SourceArn"
    pattern = evaluate(pattern)
    for name in alarms():
        assert arn_like(get_att(name, "Arn"), pattern), name
    own = get_att("DeadLetterAlarm", "Arn")
    assert not arn_like(own.replace(ACCOUNT, "999999999999"), pattern)
    assert not arn_like(own.replace(f":alarm:{STACK}-", ":alarm:another-stack-"), pattern)
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
    statements = props("ObservabilityKey")["KeyPolicy"]["Statement"]
    [logs] = [s for s in statements if text(s["Principal"].get("Service", "")).startswith("logs.")]
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


def dashboard() -> dict[str, Any]:
    """The dashboard body as CloudWatch receives it: the template's Fn::Sub rendered, then parsed as JSON."""
    [resource] = resources("AWS::CloudWatch::Dashboard").values()
    body = resource["Properties"]["DashboardBody"]
    assert set(body) == {"Fn::Sub"} and isinstance(body["Fn::Sub"], str)  # JSON text, no variable map
    parsed: dict[str, Any] = json.loads(fn_sub(body["Fn::Sub"]))
    return parsed


def test_dashboard_body_is_the_json_cloudwatch_expects() -> None:
    assert not list(intrinsics(load(str(TEMPLATE)), "Fn::ToJsonString"))  # see the Transform's comment
    body = dashboard()
    assert (body["start"], body["periodOverride"]) == ("-P14D", "inherit")
    widgets = body["widgets"]
    assert {w["type"] for w in widgets} == {"text", "metric", "alarm", "log"}
    for widget in widgets:
        assert {"x", "y", "width", "height"} <= set(widget) and widget["x"] + widget["width"] <= 24, widget
        if widget["type"] in ("metric", "log"):
            assert widget["properties"]["region"] == REGION
    [note] = [w["properties"]["markdown"] for w in widgets if w["type"] == "text"]
    heading, rest = note.split("\n", 1)  # a real line break, from the JSON escape
    assert heading.startswith("## programs-bridge")
    assert f"s3://{ref('DataBucket')}/incoming/FEED/" in rest and f"programs-bridge/{STACK}" in rest
    [log] = [w["properties"] for w in widgets if w["type"] == "log"]
    assert log["query"].startswith(f"SOURCE '/programs-bridge/{STACK}' | ")
    assert 'filter message in ["run finished", "run failed"]' in log["query"]


def test_dashboard_shows_every_metric_for_every_feed_and_the_queues_and_function() -> None:
    widgets = dashboard()["widgets"]
    lines = [line for w in widgets if w["type"] == "metric" for line in w["properties"]["metrics"]]
    searches = [line[0] for line in lines if isinstance(line[0], dict)]
    shown = set()
    for search in searches:
        # No dimension schema: a SEARCH over the namespace draws one line per feed, new feeds included.
        found = re.fullmatch(
            r"SEARCH\('Namespace=\"ProgramsBridge\" MetricName=\"(\w+)\"', '\w+', \d+\)", search["expression"]
        )
        assert found, search
        shown.add(found[1])
        # Sub's ${!...} escape leaves CloudWatch's own label variable, so each line is named by its feed.
        assert search["label"].endswith("${PROP('Dim.feed')}"), search
    assert shown == METRIC_NAMES
    assert "RunsContinued" in shown
    plain = [line for line in lines if isinstance(line[0], str)]
    assert {(line[0], line[1]) for line in plain} >= {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Duration"),
    }
    queues = {line[3] for line in plain if line[0] == "AWS/SQS"}
    assert queues == {get_att("DropQueue", "QueueName"), get_att("DeadLetterQueue", "QueueName")}
    assert {line[3] for line in plain if line[0] == "AWS/Lambda"} == {ref("PipelineFunction")}
    # The alarm widget: every alarm but the per-feed ones (those are in the alarm list), by their real ARNs.
    [shown_alarms] = [w["properties"]["alarms"] for w in widgets if w["type"] == "alarm"]
    expected = {get_att(n, "Arn") for n, a in alarms().items() if a.get("MetricName") != "FilesDelivered"}
    assert len(shown_alarms) == len(expected) == 2 + len(ALARMED_METRICS) and set(shown_alarms) == expected


# ---------------------------------------------------------------------------------------------- linting


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cfn_lint_finds_nothing() -> None:
    assert [str(match) for match in lint_file(TEMPLATE)] == []
