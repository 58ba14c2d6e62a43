"""python -m inference_operator.convert FILE.json > service.yaml

Prints the InferenceService manifest on stdout and, on stderr, one line per field that was not
carried over as it was. Exit codes: 0 converted (and the result validates); 1 converted, but the
result does not validate (printed anyway, with the reasons, to fix by hand); 2 unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from inference_operator.api.v1alpha1 import InvalidSpecError
from inference_operator.convert import FORMATS, Options, UnknownFormatError, convert
from inference_operator.convert.common import validate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference_operator.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="the cloud service's JSON; - reads stdin")
    parser.add_argument("--from", dest="fmt", choices=FORMATS, help="skip format detection")
    parser.add_argument("--image", help="container image of the model(s) (ModelArts keeps it elsewhere)")
    parser.add_argument("--data-pvc", help="PVC holding the batch data copied from OBS: obs://b/k -> pvc://PVC/b/k")
    parser.add_argument("--namespace", help="metadata.namespace of the manifest")
    ns = parser.parse_args(argv)
    try:
        text = sys.stdin.read() if ns.file == "-" else Path(ns.file).read_text(encoding="utf-8")
        data = json.loads(text)
        body, notes = convert(data, Options(image=ns.image, data_pvc=ns.data_pvc), ns.fmt)
    except (OSError, json.JSONDecodeError, UnknownFormatError) as err:
        print(f"convert: {ns.file}: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, AttributeError, KeyError) as err:  # a field of an unexpected type
        print(f"convert: {ns.file}: cannot convert: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if ns.namespace:
        body["metadata"]["namespace"] = ns.namespace
    for line in notes:
        print(line, file=sys.stderr)
    sys.stdout.write(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    try:
        validate(body)
    except InvalidSpecError as err:
        for message in err.messages:
            print(f"invalid result: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
