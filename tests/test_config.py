"""The run configuration is the single source of its flags, their help and their checks."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from samocta.cli import build_parser
from samocta.core.errors import SamOctaError
from samocta.core.options import ConfigError, choices_of, flag_of
from samocta.train import PretrainConfig, TrainConfig


def _subparser(name: str):
    return build_parser()._subparsers._group_actions[0].choices[name]


@pytest.mark.parametrize("command, cls", [("train", TrainConfig), ("pretrain-tiny", PretrainConfig)])
def test_every_field_has_a_flag_with_help_and_its_default(command, cls):
    sub = _subparser(command)
    flags = {opt: a for a in sub._actions for opt in a.option_strings}
    for f in dataclasses.fields(cls):
        action = flags.get(flag_of(f))
        assert action is not None, f"{cls.__name__}.{f.name} has no {flag_of(f)} flag"
        assert action.help and len(action.help) > 15, f"{flag_of(f)} has no help text"
        if f.name != "data":  # the one required option
            shown = "none" if f.default is None else ("on" if f.default is True else "off" if f.default is False else str(f.default))
            assert f"default: {shown}" in action.help, (flag_of(f), action.help)
    # the defaults the command line gives are the dataclass's: nothing is said twice
    args = ["--data", "x"] if command == "train" else []
    parsed = build_parser().parse_args([command, *args])
    from samocta.core.options import given_arguments

    assert cls(**given_arguments(cls, parsed)) == cls(**({"data": "x"} if command == "train" else {}))


def test_a_bad_value_of_each_choice_field_names_the_field_the_flag_and_the_choices():
    hints = typing.get_type_hints(TrainConfig)
    choice_fields = [f for f in dataclasses.fields(TrainConfig) if choices_of(hints[f.name]) is not None]
    assert {f.name for f in choice_fields} >= {"fov", "task", "split", "model", "prompt_mode", "augment", "loss_preset",
                                               "mask_rule", "amp", "grad_checkpointing", "sdpa", "half_frozen"}
    for f in choice_fields:
        with pytest.raises(ConfigError) as err:
            TrainConfig(**{f.name: "bogus"})
        message = str(err.value)
        assert f.name in message and flag_of(f) in message and "bogus" in message, message
        assert all(str(c) in message for c in choices_of(hints[f.name])), message
    with pytest.raises(ConfigError, match="amp"):
        TrainConfig(amp="yes")
    with pytest.raises(ConfigError, match="loss_preset"):
        TrainConfig(loss_preset="papr")


@pytest.mark.parametrize("field, value, words", [
    ("rank", 0, "1 to 256"), ("rank", 100_000, "1 to 256"), ("lr", 0.0, "above 0"), ("batch_size", 0, "1 to 1024"),
    ("epochs", 0, "at least 1"), ("max_train", 0, "at least 1"), ("fold", -1, "at least 0"), ("lr", float("nan"), "finite"),
    ("epochs", 2.5, "an integer"), ("train_decoder", "yes", "true or false"),
])
def test_numbers_are_checked_against_their_range(field, value, words):
    with pytest.raises(ConfigError, match=words):
        TrainConfig(**{field: value})


def test_the_prompt_recipe_is_saved_and_old_configs_still_load(tmp_path):
    config = TrainConfig(task="Artery", prompt_mode="local", n_pos=3)
    config.to_json(tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["prompts"]["mode"] == "local" and saved["prompts"]["n_pos"] == 3 and saved["prompts"]["n_neg"] == 2
    assert saved["prompts"]["task"] == "Artery"
    assert TrainConfig.from_json(tmp_path / "config.json") == config
    # a config.json as the version before this one wrote it (multimask, no prompts key)
    old = {k: v for k, v in dataclasses.asdict(TrainConfig()).items() if k != "mask_rule"}
    (tmp_path / "old.json").write_text(json.dumps({**old, "multimask": True}))
    assert TrainConfig.from_json(tmp_path / "old.json") == TrainConfig(mask_rule="most_confident")


def test_build_model_and_resolve_device_live_with_the_model():
    from samocta.model import DeviceError, build_model, resolve_device

    assert callable(build_model) and resolve_device("cpu").type == "cpu"
    with pytest.raises(DeviceError, match="tpu"):
        resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_train_without_options_runs_the_cpu_recipe_and_the_official_types_the_papers():
    from samocta.config import RECIPE_CHOICES
    from samocta.train.command import parse_train_args, train_config

    tiny = train_config(parse_train_args(["--data", "d"]))
    assert all(getattr(tiny, k) == v for k, v in RECIPE_CHOICES["cpu"].items()) and tiny.recipe() == ("cpu", [])
    mine = train_config(parse_train_args(["--data", "d", "--epochs", "20", "--rank", "4"]))
    assert mine.recipe() == ("cpu", ["--epochs 20", "--rank 4"]) and mine.input_size == 1024  # the rest of the recipe stays
    # a lever no recipe sets is a departure too, said in train's first lines
    levers = train_config(parse_train_args(["--data", "d", "--fine", "--lr", "0.002"]))
    assert levers.recipe() == ("cpu", ["--fine", "--lr 0.002"])
    official = train_config(parse_train_args(["--data", "d", "--model", "vit_h", "--checkpoint", "random"]))
    assert official.recipe() == ("paper", []) and official.input_size is None and not official.train_decoder
    assert train_config(parse_train_args(["--data", "d", "--preset", "paper"])).recipe() == ("paper", [])
    with pytest.raises(SamOctaError, match="tiny SAM's"):
        train_config(parse_train_args(["--data", "d", "--model", "vit_b", "--checkpoint", "random", "--preset", "cpu"]))
