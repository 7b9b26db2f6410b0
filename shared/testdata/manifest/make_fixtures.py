#!/usr/bin/env python3
"""Derive the invalid manifest fixtures from valid.json (run from this directory).

valid.json is written by hand and is the reference example of the schema; each invalid_*.json
differs from it in exactly one way, described in the table below. tests/manifest_fixtures.rs
asserts the error message each one produces.
"""
import copy
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
valid = json.loads((HERE / "valid.json").read_text())


def variant(name, edit):
    m = copy.deepcopy(valid)
    edit(m)
    (HERE / f"invalid_{name}.json").write_text(json.dumps(m, indent=2) + "\n")


def newer(m):
    m["schema_version"] = 2
    m["new_in_v2"] = {"anything": True}  # the version is checked before the fields


def rename_key(obj, old, new):
    items = [(new if k == old else k, v) for k, v in obj.items()]
    obj.clear()
    obj.update(items)


variant("newer_version", newer)
variant("missing_labels", lambda m: m.pop("labels"))
variant("missing_onnx_sha256", lambda m: m["onnx"].pop("sha256"))
variant("unknown_field", lambda m: rename_key(m["preprocess"], "color", "colour"))
variant("unknown_top_level_field", lambda m: m.update({"comment": "not in the schema"}))
variant("bad_sha256", lambda m: m["onnx"].update({"sha256": m["onnx"]["sha256"][:63]}))
variant("labels_order", lambda m: m.update({"labels": ["angry", "disgust", "fear", "sad",
                                                       "happy", "surprise", "neutral"]}))
variant("shape_mismatch", lambda m: m["input"].update({"shape": [1, 3, 48, 48]}))
variant("self_test_length", lambda m: m["self_test"][0]["expected"].pop())
variant("bad_created_at", lambda m: m.update({"created_at": "2025-02-30T10:00:00Z"}))
(HERE / "invalid_not_json.json").write_text('{"schema_version": 1, "model": \n')
