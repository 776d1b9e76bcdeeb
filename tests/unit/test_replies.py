"""Replies learned from the history (seed 002, issue 16 part 4): feedback scores, the
choice among a turn's candidate replies, training with its held-out check, on plain
data whose right answer is known, and through the daemon's glue (history file, child
process, model file, flow engine, call session)."""

from __future__ import annotations

import json
import random

import pytest

from edgecall.config.rules import ConversationRuleConfig, FeedbackScoreConfig
from edgecall.history import History
from edgecall.learning import REPLY_MODEL_SCHEMA
from edgecall.messages import Identity
from edgecall.reply_model import MODEL_FILE, PREVIOUS_FILE, ReplyModel, ReplyModelError
from edgecall.reply_training import MIN_MATCHES, Sample, read_samples, run, train
from edgecall.rules.flow import FlowEngine
from edgecall.rules.replies import CONTINUE, ReplyChooser, feedback_score
from edgecall.rules.session import CallSession, Lexicons
from edgecall.validation import validator
from tests.unit.test_flow import FLOW, facts
from tests.unit.test_intro_learning import learning_box

OPTIONS = ("followup.price", "soothing", CONTINUE)  # the rules say the first
# The hidden world: how often each reply leads to a sale, for an angry and a calm caller.
WORLD = {
    "angry": {"followup.price": 0.2, "soothing": 0.6, CONTINUE: 0.1},
    "calm": {"followup.price": 0.6, "soothing": 0.2, CONTINUE: 0.3},
}
SETTINGS = {"threshold": 60.0, "min_samples": 50, "holdout": 0.2}
FEEDBACK = FeedbackScoreConfig()


def features(mood: str) -> dict[str, float]:
    return {
        "node=offer": 1.0,
        "topic=price": 1.0,
        f"emotion_tendency={-1 if mood == 'angry' else 0}": 1.0,
        "emotion": -0.6 if mood == "angry" else 0.1,
    }


def logged(n: int, world=WORLD, *, explore=0.3, seed=1, model=None) -> list[Sample]:
    """Turns as a box logs them: the policy (rules, or `model`) with exploration, each
    reply's sale drawn from the world; a sale scores 80, anything else 30."""
    rng = random.Random(seed)
    chooser = ReplyChooser(model, explore)
    out = []
    for _ in range(n):
        mood = rng.choice(["angry", "calm"])
        choice = chooser.choose(OPTIONS, features(mood), rng)
        sale = rng.random() < world[mood][choice.kind]
        out.append(Sample(features(mood), OPTIONS, choice.kind, choice.p, 80.0 if sale else 30.0))
    return out


def best(model: ReplyModel, mood: str) -> str:
    return ReplyChooser(model).choose(OPTIONS, features(mood), random.Random(0)).kind


# --- the pure parts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("this", "following", "outcome", "sale", "score"),
    [
        ((0, 0), None, "completed", True, 80),  # the sale
        ((0, 0), (-1, 0), "completed", True, 70),  # a sale, though the caller cooled
        ((0, 0), None, "failed", False, 20),  # the caller left after it
        ((-1, 0), (0, 1), "failed", False, 50),  # warmer and more interested
        ((-1, -1), (1, 1), "failed", False, 70),  # two steps each, capped at 2
        ((0, 0), (0, 0), "transferred", False, 60),
        ((0, 0), (0, 0), "redial_scheduled", False, 50),
        ((1, 1), (-1, -1), "abandoned", False, 0),  # floored at 0
    ],
)
def test_the_feedback_score(this, following, outcome, sale, score):
    assert feedback_score(this, following, outcome, sale, FeedbackScoreConfig()) == score


def test_the_feedback_weights_come_from_the_config():
    mild = FeedbackScoreConfig(per_step=5, left=0, other=40)
    assert feedback_score((-1, 0), (0, 1), "failed", False, mild) == 50
    assert feedback_score((0, 0), None, "failed", False, mild) == 40


def test_choices_carry_the_probability_they_had():
    rules = ReplyChooser(explore=0.3)
    picks = [rules.choose(OPTIONS, {}, random.Random(i)) for i in range(3000)]
    first = [c for c in picks if c.kind == "followup.price"]
    assert all(c.p == pytest.approx(0.8) for c in first) and {c.by for c in first} == {"rules"}
    others = [c for c in picks if c.kind != "followup.price"]
    assert all(c.p == pytest.approx(0.1) for c in others)
    assert {c.by for c in others} == {"explore"}
    assert len(first) / len(picks) == pytest.approx(0.8, abs=0.03)
    assert ReplyChooser().choose(OPTIONS, {}, random.Random(0)).p == 1.0


def test_the_engine_offers_the_fitting_replies_and_says_the_chosen_one():
    rules = ConversationRuleConfig()
    turn = facts(topics=("price",), emotion=-1)
    engine = FlowEngine(FLOW, {"price", "data"}, rules)
    state, _ = engine.begin("c1")
    state.node = "offer"
    step = engine.turn(state, turn, "c1", {"x": 1.0})
    assert step.choice.options == OPTIONS and step.choice.kind == "followup.price"
    assert step.say == ("followup.price", "offer_q") and step.choice.by == "rules"

    class PrefersSoothing:
        def scores(self, f, options):
            return {o: (1.0 if o == "soothing" else 0.0) for o in options}

    engine = FlowEngine(FLOW, {"price", "data"}, rules, replies=ReplyChooser(PrefersSoothing()))
    state, _ = engine.begin("c1")
    state.node = "offer"
    step = engine.turn(state, turn, "c1", {"x": 1.0})
    assert (step.say, step.choice.by, step.node) == (("soothing", "offer_q"), "model", "offer")
    # one fitting reply: no choice to make, nothing recorded
    state.node = "offer"
    assert engine.turn(state, facts(yes_no="yes"), "c1").choice is None


def test_training_learns_which_reply_works_for_whom_and_beats_the_rules():
    decision, model, figures = train(logged(3000), current=None, **SETTINGS)
    assert decision == "adopted", figures
    assert (best(model, "angry"), best(model, "calm")) == ("soothing", "followup.price")
    values = figures["values"]
    # an angry caller sells 60 % soothed against 20 % answered: the model is worth more
    assert values["new"]["value"] > values["rules"]["value"] + 5
    assert values["new"]["matches"] >= MIN_MATCHES


def test_a_model_worse_on_recent_turns_is_not_used_and_a_stale_one_is_retired():
    # the world turned round in the held-out fifth: angry callers now want the answer
    flipped = {"angry": WORLD["calm"], "calm": WORLD["angry"]}
    samples = logged(2400, seed=2) + logged(600, flipped, seed=3)
    decision, model, _ = train(samples, current=None, **SETTINGS)
    assert (decision, model) == ("kept", None)  # the rules stay
    old = train(logged(3000), current=None, **SETTINGS)[1]
    assert old is not None
    decision, model, figures = train(samples, current=old, **SETTINGS)
    assert (decision, model) == ("rules", None), figures


def test_too_few_good_replies_train_nothing():
    assert train(logged(60), current=None, **SETTINGS)[0] == "too_few_samples"
    same = [Sample(features("calm"), OPTIONS, "soothing", 1.0, 80.0) for _ in range(100)]
    assert train(same, current=None, **SETTINGS)[0] == "one_reply_only"


def test_a_broken_model_file_is_reported_and_the_rules_choose(tmp_path):
    bad = tmp_path / MODEL_FILE
    bad.write_text(
        '{"schema": "edgecall.reply-model/1", "features": ["a"], "labels": ["x"], '
        '"coef": [[1.0, 2.0]], "intercept": [0.0]}'
    )
    with pytest.raises(ReplyModelError, match="coef is"):
        ReplyModel.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ReplyModelError, match="unreadable"):
        ReplyModel.load(bad)


# --- through the history, the child process and the model files -------------------


def record(history: History, samples: list[Sample], mood_of=None) -> None:
    """Write logged turns into the history as calls publish them: one call per turn, its
    sale the outcome (80) or not (30, and the caller left: no next turn)."""
    for i, s in enumerate(samples):
        call_id = f"t{i}"
        history.record(
            {
                "schema": "edgecall.event/1",
                "type": "call.started",
                "call_id": call_id,
                "campaign": "retail-en",
                "ts": "2027-01-15T08:00:00.000Z",
            }
        )
        choice = {
            "kind": s.kind,
            "options": list(s.options),
            "by": "rules",
            "p": s.p,
            "features": s.features,
        }
        history.record(
            {
                "schema": "edgecall.event/1",
                "type": "turn",
                "call_id": call_id,
                "turn": 1,
                "utterance": "how much",
                "emotion": {"tendency": 0},
                "intent": {"tendency": 0},
                "reply": {"choice": choice},
            }
        )
        sale = s.score == 80.0
        history.record(
            {
                "schema": "edgecall.outcome/1",
                "call_id": call_id,
                "outcome": "completed" if sale else "failed",
                "agreed": sale,
                "turns": 1,
                "ts": f"2027-01-15T08:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
            }
        )


def test_the_history_gives_back_the_samples_it_was_given(tmp_path):
    h = History(tmp_path / "history.sqlite", keep_days=3650)
    given = logged(200)
    record(h, given)
    back = read_samples(h.path, FEEDBACK)
    assert [(s.kind, s.p) for s in back] == [(s.kind, pytest.approx(s.p)) for s in given]
    # the score is recomputed from the call: a sale 80, a failed call the caller left 20
    assert [s.score for s in back] == [80.0 if s.score == 80.0 else 20.0 for s in given]


def test_run_keeps_the_files_as_decided(tmp_path):
    h = History(tmp_path / "history.sqlite", keep_days=3650)
    record(h, logged(3000))
    result = run(h.path, tmp_path, feedback=FEEDBACK, **SETTINGS)
    assert result["decision"] == "adopted" and (tmp_path / MODEL_FILE).exists()
    first = ReplyModel.load(tmp_path / MODEL_FILE)
    assert best(first, "angry") == "soothing"
    result = run(
        h.path, tmp_path, feedback=FEEDBACK, **SETTINGS
    )  # the same history again: as good, adopted
    assert result["decision"] == "adopted" and (tmp_path / PREVIOUS_FILE).exists()


async def test_the_daemon_trains_in_a_child_process_and_new_calls_use_the_model(
    tmp_path, shipped_config
):
    history = History(tmp_path / "history.sqlite", keep_days=3650)
    box = learning_box(history, shipped_config, [0.0])
    box.learning.models_dir = tmp_path
    assert box.learning.reply_chooser(shipped_config).model is None  # nothing trained yet
    record(history, logged(3000))
    result = await box.learning.train_replies()
    assert result["decision"] == "adopted", result
    (published,) = [m for t, m in box.link.published if m["schema"] == REPLY_MODEL_SCHEMA]
    validator("reply-model-trained.json").validate(published)
    assert box.renewed == 1 and box.learning.stats()["in_use"]
    chooser = box.learning.reply_chooser(shipped_config)
    assert chooser.choose(OPTIONS, features("angry"), random.Random(0)).by in ("model", "explore")
    assert best(chooser.model, "angry") == "soothing"
    off = shipped_config.model_copy(
        update={
            "rules": shipped_config.rules.model_copy(
                update={
                    "replies": shipped_config.rules.replies.model_copy(update={"learned": False})
                }
            )
        }
    )
    assert box.learning.reply_chooser(off).model is None
    # a broken history: the child reports it, nothing changes
    (tmp_path / "history.sqlite").write_bytes(b"garbage" * 100)
    failed = await box.learning.train_replies()
    assert "error" in failed and box.learning.stats()["in_use"]
    # a model file broken on disk: reported, the rules choose
    (tmp_path / MODEL_FILE).write_text("{}")
    box.learning.load_reply_model()
    assert box.learning.reply_model is None and "not a" in box.learning.stats()["error"]


def test_a_session_publishes_the_choice_with_its_features(shipped_config):
    cfg = shipped_config
    session = CallSession(
        cfg,
        Lexicons(cfg),
        Identity("site-1", "box-1"),
        call_id="c-choice",
        direction="inbound",
        remote="+15550100001",
        t=0.0,
        campaign="retail-en",
        replies=ReplyChooser(),
    )
    session.opening(1.0)
    session.caller_turn("This is a waste of time, how much is it?", 5.0)
    turn = next(m.body for m in session.take_messages() if m.body.get("type") == "turn")
    validator("event.json").validate(turn)
    choice = turn["reply"]["choice"]
    assert choice["options"][0] == "followup.price" and choice["kind"] == "followup.price"
    assert "soothing" in choice["options"] and choice["options"][-1] == CONTINUE
    assert choice["features"]["topic=price"] == 1.0 and choice["features"]["node=opening"] == 1.0
    assert json.dumps(choice)  # plain JSON, as head office and the history get it
