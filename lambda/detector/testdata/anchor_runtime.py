"""A minimal Lambda custom-runtime loop for the anchor's Python detector.

TestFigureAnchorEndToEnd runs it as the anchor function's bootstrap against the same
local Runtime API as our binary: GET /next, call the handler, POST the response or
the error, as the AWS Lambda runtime interface client does. ANCHOR_PY names the
anchor's handler file (not part of this repository). ANCHOR_VARIANT chooses what is
hoisted out of the per-record path, to compare the algorithm and not its incidental
costs:

- "published": nothing. The handler reads its instance data from S3 once per
  instance-session record (its "wait to get instance data till we need it" check is
  always true) and creates a new SNS client for every alert.
- "s3-once": get_instance_data memoised for the length of one invocation, the read the
  code evidently meant.
- "clients-once": that, and boto3 clients cached for the life of the process, as a
  Lambda would normally hold them.
"""
import importlib.util
import json
import os
import urllib.request

spec = importlib.util.spec_from_file_location("anchor", os.environ["ANCHOR_PY"])
anchor = importlib.util.module_from_spec(spec)
spec.loader.exec_module(anchor)

variant = os.environ.get("ANCHOR_VARIANT", "published")
memo = {}
if variant in ("s3-once", "clients-once"):
    fetch = anchor.get_instance_data

    def get_instance_data(bucket, key):
        if (bucket, key) not in memo:
            memo[(bucket, key)] = fetch(bucket, key)
        return memo[(bucket, key)]

    anchor.get_instance_data = get_instance_data
if variant == "clients-once":
    import boto3

    class CachedClients:
        """boto3 as the handler uses it, with client() cached per service and region."""

        def __init__(self):
            self.clients = {}

        def client(self, service, region_name=None):
            key = (service, region_name)
            if key not in self.clients:
                self.clients[key] = boto3.client(service, region_name=region_name)
            return self.clients[key]

    anchor.boto3 = CachedClients()

api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    memo.clear()
    try:
        body, path = json.dumps(anchor.handler(event, None)), "/response"
    except Exception as e:  # the handler's failure is the invocation's error
        body, path = json.dumps({"errorMessage": str(e), "errorType": type(e).__name__}), "/error"
    req = urllib.request.Request(api + request_id + path, data=body.encode(), method="POST")
    with urllib.request.urlopen(req) as r:
        r.read()
