"""template.yaml through the SAM transform, as `sam deploy` has CloudFormation run it.

Reads the SAM template at argv[1] and prints the CloudFormation template that
aws-sam-translator (the transform behind AWS::Serverless-2016-10-31) makes of it, as JSON.
Local CodeUri/DefinitionUri paths become S3 URIs first, as `sam package` uploads them.
"""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

PACKAGED = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


class NoManagedPolicies:
    """The template names managed policies by ARN only: nothing to look up in IAM."""

    def load(self):
        return {}


def main(path):
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        key = PACKAGED.get(resource.get("Type"))
        props = resource.get("Properties", {})
        if key and isinstance(props.get(key), str) and not props[key].startswith("s3://"):
            props[key] = "s3://packaged-artifacts/" + props[key].strip("./")
    json.dump(transform(template, {}, NoManagedPolicies()), sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
