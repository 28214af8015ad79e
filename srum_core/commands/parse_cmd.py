"""``parse-prompt``: show the objects and spatial relations the rule-based parser reads from a prompt."""

from __future__ import annotations

import argparse
import json

from . import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "parse-prompt",
        help="parse a prompt into objects (count, colour, attributes) and spatial relations; prints JSON",
        description="Rule-based prompt parser used for grounding queries and region labels.",
    )
    parser.add_argument("text", help='the prompt, e.g. "a green bench on the left of two red cars"')
    parser.add_argument("--compact", action="store_true", help="print the JSON on one line instead of indented")
    parser.set_defaults(handler=run_parse)


def run_parse(args: argparse.Namespace) -> int:
    from ..prompt_parser import parse_objects

    if not args.text.strip():
        raise CliError('the prompt is empty; pass the text to parse, e.g. parse-prompt "three dogs and two cats"')
    parsed = parse_objects(args.text)
    print(json.dumps(parsed.to_dict(), indent=None if args.compact else 2, ensure_ascii=False))
    return 0
