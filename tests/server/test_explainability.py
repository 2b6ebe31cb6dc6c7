"""Inference explainability: each ranked action's feature contributions in the rank answer.

Azure's ``azure-ai-personalizer`` turns it on through the service configuration
and reads ``inferenceExplanation`` from rank against a live server; the
contributions themselves are checked against Vowpal Wabbit's own record of
feature names and weights, and against a model trained on a world where one
feature decides the reward.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import vowpal_wabbit_next as vw

from banditkit.dsjson import dsjson_context
from banditkit.engine import Engine
from banditkit.settings import LoopSettings
from banditkit.types import Action
from banditkit.vw import VWLearner

pytest.importorskip("azure.ai.personalizer")

from azure.ai.personalizer import (  # noqa: E402
    PersonalizerAdministrationClient,
    PersonalizerClient,
)
from azure.core.credentials import AzureKeyCredential  # noqa: E402

THEMES = ("romance", "action", "comedy", "drama")
CONTEXT = {"Member": {"country": "BR", "age": 0.5}, "Zone": {"z": "q"}, "": {"hour": 1.5}}
ACTIONS = [{"Artwork": {"theme": "comedy", "faces": 2.0}, "Yak": {"y": "1"}},
           {"Artwork": {"theme": "drama", "warm": 0.3}, "Boost": {"b": 2.0}}]


def _trained(args: str, *, seed: int = 0, n: int = 400) -> VWLearner:
    """A learner where comedy artwork is played and nothing else is."""
    rng = np.random.default_rng(seed)
    learner = VWLearner(args=args)
    for _ in range(n):
        context = {"Member": {"country": str(rng.choice(["BR", "US", "FR"])),
                              "age": float(rng.random())}}
        actions = [{"Artwork": {"theme": theme}, "Noise": {"n": str(rng.integers(20))}}
                   for theme in THEMES]
        chosen = int(rng.integers(len(actions)))
        learner.learn_one(context, actions, chosen=chosen,
                          reward=float(THEMES[chosen] == "comedy"), probability=0.25)
    return learner


def _recorded(learner, context, action):
    """Each weight the prediction of ``action`` touched, times its features' values, as
    VW itself names them (``record_feature_names``), signed as reward; the constant left
    out."""
    workspace = vw.Workspace([*learner.args.split(), "--quiet"], model_data=learner.to_bytes(),
                             record_feature_names=True)
    line = json.dumps({"c": dsjson_context(context, [action])})
    workspace.predict_one(vw.DSJsonFormatParser(workspace).parse_json(line))
    values = {(ns or " ", name if not isinstance(v, str) else name + v):
              1.0 if isinstance(v, str) else v
              for ns, features in [*context.items(), *action.items()]
              for name, v in features.items()}
    return [-w["value"] * np.prod([values[t["namespace"], t["name"]] for t in w["terms"]])
            for w in json.loads(workspace.json_weights(include_feature_names=True))["weights"]
            if w["terms"] and w["terms"][0]["name"] != "Constant"]


@pytest.mark.parametrize("args", ["-q ::", "-q MA", "", "-q AM -q ZB", "--interactions M:"])
def test_contributions_are_the_weights_vw_records_for_the_features(args):
    learner = _trained(f"--cb_explore_adf --epsilon 0.2 {args}")
    explained = learner.explain(CONTEXT, ACTIONS, top=1000)
    for action, mine in zip(ACTIONS, explained, strict=True):
        expected = _recorded(learner, CONTEXT, action)
        # VW lists the weights learning moved; the features it never saw weigh 0
        moved = sorted(score for _, score in mine if score != 0.0)
        assert len(moved) == len(expected) > 0
        assert moved == pytest.approx(sorted(expected), abs=1e-6)


def test_a_feature_in_both_context_and_action_sums_its_contributions():
    learner = _trained("--cb_explore_adf --epsilon 0.2 -q ::")
    context = {"Member": {"country": "BR"}}
    action = {"Member": {"country": "US"}, "Artwork": {"theme": "comedy"}}
    [mine] = learner.explain(context, [action], top=1000)
    names = [name for name, _ in mine]
    assert len(names) == len(set(names)) and "Member.country^Member.country" in names
    assert sum(score for _, score in mine) == pytest.approx(
        sum(_recorded(learner, context, action)), abs=1e-5)


def test_the_feature_that_drives_the_reward_contributes_most():
    learner = _trained("--cb_explore_adf --epsilon 0.2 -q ::")
    context = {"Member": {"country": "US", "age": 0.3}}
    actions = [{"Artwork": {"theme": theme}, "Noise": {"n": "3"}} for theme in THEMES]
    explained = learner.explain(context, actions, top=3)
    comedy = explained[THEMES.index("comedy")]
    assert len(comedy) == 3
    # the comedy theme, alone or crossed, holds the largest contribution, and raises it
    name, score = comedy[0]
    assert "Artwork.theme" in name and score > 0
    assert all(abs(score) >= abs(s) for _, s in comedy)
    others = [explained[i][0][1] for i, theme in enumerate(THEMES) if theme != "comedy"]
    assert score > max(others)


def test_the_engine_explains_only_when_the_settings_ask(tmp_path):
    actions = [Action(id=f"a{i}", features=a) for i, a in enumerate(ACTIONS)]
    with Engine.open(tmp_path, settings=LoopSettings()) as engine:
        assert engine.rank(CONTEXT, actions).explanation is None
        engine.update_settings(engine.settings.replace(inference_explainability=True))
        decision = engine.rank(CONTEXT, actions, excluded=["a1"])
    assert [action_id for action_id, _ in decision.explanation] == ["a0"]
    names = {name for name, _ in decision.explanation[0][1]}
    assert "Artwork.theme" in names and "Member.country^Artwork.theme" not in names


@pytest.mark.slow  # a live server process (about 2 s)
def test_the_sdk_turns_it_on_and_reads_the_explanation(live_server):
    admin = PersonalizerAdministrationClient(live_server.url,
                                             AzureKeyCredential(live_server.keys["admin"]))
    client = PersonalizerClient(live_server.url, AzureKeyCredential(live_server.keys["client"]))
    request = {"contextFeatures": [{"Member": {"country": "BR"}}],
               "actions": [{"id": "comedy", "features": [{"Artwork": {"theme": "comedy"}}]},
                           {"id": "drama", "features": [{"Artwork": {"theme": "drama"}}]}]}
    configuration = admin.get_service_configuration()
    assert configuration["isInferenceExplainabilityEnabled"] is False
    assert "inferenceExplanation" not in client.rank(request)

    changed = admin.update_service_configuration(
        {**configuration, "isInferenceExplainabilityEnabled": True})
    assert changed["isInferenceExplainabilityEnabled"] is True
    assert admin.get_service_configuration()["isInferenceExplainabilityEnabled"] is True
    response = client.rank(request)
    explanation = response["inferenceExplanation"]
    assert [e["id"] for e in explanation] == [r["id"] for r in response["ranking"]]
    names = {f["name"] for f in explanation[0]["features"]}
    # the default policy crosses every namespace pair (-q ::)
    assert {"Member.country", "Artwork.theme", "Artwork.theme^Member.country"} <= names
    assert all(isinstance(f["score"], float) for f in explanation[0]["features"])

    # a later PUT without the field keeps it; false turns it off
    configuration = {k: v for k, v in changed.items() if k != "isInferenceExplainabilityEnabled"}
    assert admin.update_service_configuration(
        configuration)["isInferenceExplainabilityEnabled"] is True
    admin.update_service_configuration({**configuration,
                                        "isInferenceExplainabilityEnabled": False})
    assert "inferenceExplanation" not in client.rank(request)
