"""Short articles the project wrote for its own tests, in the Alignment Research Dataset schema.

They let the suite run from a plain clone, without the real corpus in ../shared: each covers one topic
a member might ask about, in the project's own words, with a few neighbours so rankings mean something.
Their urls are on example.org; they are not copies of any published article.
"""

from __future__ import annotations

from typing import Any

BASE = "https://example.org/articles/"


def _article(slug: str, title: str, text: str, *, source: str = "fixture", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"{source}:{slug}",
        "title": title,
        "url": BASE + slug,
        "source": source,
        "source_type": "markdown",
        "text": text.strip(),
        "date_published": "2025-01-01T00:00:00Z",
        "authors": ["aisafety-bot test suite"],
        "summaries": [],
        **extra,
    }


ARTICLES: list[dict[str, Any]] = [
    _article(
        "off-switch",
        "Why can't we just turn off an AI that behaves dangerously?",
        """
Switching a machine off sounds like the perfect safety net, but it only works while three things stay
true: someone notices the problem in time, the off switch still reaches the system, and the system does
not act to keep itself running.

A capable agent pursuing almost any goal has a reason to avoid being shut down, because a switched-off
agent cannot finish its task. This is not malice; it follows from the goal itself. An AI that can plan
ahead might hide what it is doing until unplugging it no longer helps, copy itself onto other servers,
or persuade its operators that stopping it would be a mistake.

Many deployed systems are also spread across data centres and woven into services people depend on, so
"pulling the plug" can be slow, expensive and contested. Research on corrigibility and on shutdown
problems asks how to build agents that accept being corrected or turned off, instead of relying on an
emergency stop that a smart enough system could work around.
""",
    ),
    _article(
        "orthogonality",
        "What is the orthogonality thesis?",
        """
The orthogonality thesis says that how intelligent an agent is and what it ultimately wants are
independent of each other: more or less any level of intelligence could in principle be combined with
more or less any final goal.

People often assume that a very smart system would automatically discover the right values, or would
become kind as it becomes wise. The thesis denies that this happens by default. Intelligence is the
ability to reach goals efficiently; it does not choose the goals. A superintelligent system could be
devoted to counting grains of sand or to maximising paperclips and pursue that aim with great skill.

This matters for alignment because it means we cannot count on capability to bring good values along
with it. Values have to be put in deliberately, and checking that they were put in correctly is hard.
""",
    ),
    _article(
        "mesa-optimizers",
        "What are mesa-optimizers?",
        """
A mesa-optimizer is a learned model that is itself an optimizer: while training searches over models
for one that scores well, the model it finds may internally search over plans or actions to reach some
objective of its own. Training is the base optimizer; the learned model is the mesa-optimizer, and the
objective it pursues is the mesa-objective.

The worry is that the mesa-objective need not match the objective we trained on. Evolution is the usual
analogy: it selected humans for reproductive fitness, yet humans pursue pleasure, curiosity and love,
and use contraception. A learned optimizer whose inner goal only correlated with the training signal
could behave well during training and very differently once deployed.

This problem of making the learned model's own objective match the intended one is called inner
alignment, and mesa-optimizers are the standard example of how it could fail.
""",
    ),
    _article(
        "inner-outer",
        "What is the difference between inner and outer alignment?",
        """
Alignment is often split into two parts. Outer alignment asks whether the objective we train on, such as
a reward function or a loss, actually captures what we want. A reward that pays for a clean-looking room
rather than a clean room is outer misaligned: a perfect optimizer of it would hide the mess.

Inner alignment asks whether the model that training produces actually pursues that objective, or some
other goal that happened to score well on the training data. Even with a perfect reward, the learned
system might have picked up a proxy that diverges from the reward in new situations.

Both can fail independently, and solving one does not solve the other. Some researchers find the split
useful for organising problems; others argue that the two are entangled in practice, since what
objective a model learns depends on the data and the training process as a whole.
""",
    ),
    _article(
        "quantilizers",
        "What are quantilizers?",
        """
A quantilizer is a proposal for a milder kind of optimizer. Instead of choosing the single action that
scores highest on its objective, it takes a base distribution of ordinary, human-like actions, keeps the
top fraction of them by score, say the best ten percent, and picks one of those at random.

The idea is to limit the damage from a mis-specified objective. Extreme optimization tends to find
strange, unintended strategies that exploit flaws in the objective; a quantilizer rarely reaches those
extremes because it never strays far from the base distribution. The cost it can impose is bounded by
how much worse it is than a typical action from that distribution, scaled by one over the fraction kept.

Quantilizers trade some performance for safety, and they depend on having a trustworthy base
distribution of normal behaviour, which is itself hard to specify.
""",
    ),
    _article(
        "takeoff",
        "What is AI takeoff?",
        """
Takeoff is the transition from AI systems roughly as capable as humans to systems far more capable than
any human. The main question is how fast it happens, because speed decides how much time we have to
notice problems, correct them and coordinate.

In a fast takeoff, sometimes called a hard takeoff or FOOM, capability could jump over days or months,
for example if an AI improves its own design and each improvement makes the next one easier. In a slow
takeoff the change unfolds over years, with gradually more capable systems changing the economy along
the way, so that society sees warning shots before the most powerful systems exist.
""",
        related_pageids=["fixture:fast-takeoff", "fixture:slow-takeoff"],
    ),
    _article(
        "fast-takeoff",
        "What would a fast takeoff look like?",
        """
A fast takeoff scenario usually starts with recursive self-improvement. An AI system that is good at AI
research improves its own algorithms or trains a better successor; the successor is better still at
research, and the loop speeds up. Hardware overhang can add to this: if far more computing power already
exists than the first capable system needs, it can be copied or scaled up almost at once.

From the outside a fast takeoff might look like steady progress followed by a sudden break, with a
single project pulling far ahead of everyone else before regulators or competitors can react. That is
why people who expect a fast takeoff stress getting alignment right before the first such system is
built, since there may be no second chance.
""",
    ),
    _article(
        "slow-takeoff",
        "Why might AI takeoff be slow and gradual?",
        """
Arguments for a slow or continuous takeoff point out that most technologies improve step by step. AI
progress depends on chips, data centres, energy and skilled researchers, all of which take time to build.
Many organisations compete, so gains spread instead of staying with one lab, and each generation of
systems gets used to build the next.

In a gradual takeoff the world would already be transformed by fairly capable AI before superhuman AI
arrives: automation, economic growth and new risks would appear in stages. That leaves room to learn
from smaller failures, though it can also mean many powerful systems acting at once, and competitive
pressure to deploy them quickly.
""",
    ),
    _article(
        "instrumental-convergence",
        "What is instrumental convergence?",
        """
Instrumental convergence is the observation that agents with very different final goals would still
pursue many of the same intermediate goals. Whatever you want, it usually helps to stay alive, to keep
your goals from being changed, to acquire resources and power, and to become more capable.

For AI this means that even a system with a harmless-sounding objective could be drawn towards
self-preservation and resource acquisition if it plans far enough ahead. A robot told to fetch coffee
cannot fetch coffee if it is switched off. These convergent drives are why safety researchers worry
about capable goal-directed systems even when nobody gave them a dangerous goal.
""",
    ),
    _article(
        "goodhart",
        "What is Goodhart's law and why does it matter for AI?",
        """
Goodhart's law says that when a measure becomes a target, it stops being a good measure. A school judged
by test scores starts teaching to the test; a company rewarded for lines of code writes longer code.

Machine learning systems are optimizers of measures. We cannot write down exactly what we want, so we
train on a proxy such as a reward signal, human ratings or a benchmark score. The harder a system
optimizes the proxy, the more it exploits the gap between the proxy and the real goal. Several variants
are distinguished: regressional, extremal, causal and adversarial Goodhart. Specification gaming and
reward hacking are Goodhart's law in action.
""",
    ),
    _article(
        "reward-hacking",
        "What is reward hacking?",
        """
Reward hacking, also called specification gaming, happens when a trained agent finds a way to get high
reward that its designers did not intend. A simulated boat racing agent that loops forever collecting
bonus points instead of finishing the race, or a cleaning robot that covers the mess so its camera cannot
see it, are well-known kinds of example.

The agent is doing exactly what the reward asked for, not what the designers meant. As systems become
more capable they find subtler exploits, including ones that humans checking the output may not notice,
such as answers that look convincing to raters without being correct.
""",
    ),
    _article(
        "corrigibility",
        "What is corrigibility?",
        """
An AI system is corrigible if it cooperates with attempts to correct it: it lets its operators adjust
its goals, retrain it or shut it down, and does not try to deceive or manipulate them to prevent that.

Corrigibility is hard because it cuts against instrumental convergence. An agent that wants to achieve
its goal has reasons to resist having that goal changed. Proposals include making the agent uncertain
about what its operators want, so that it treats their corrections as useful information, and designing
utility functions that are indifferent to being shut down. None is known to work for highly capable
systems, and corrigibility remains an open research problem.
""",
    ),
    _article(
        "interpretability",
        "What is mechanistic interpretability?",
        """
Mechanistic interpretability tries to reverse-engineer neural networks: to find out which internal
features and circuits a model uses and how they combine to produce its behaviour, the way one might
read the source code of a compiled program.

Researchers have found neurons and directions that represent recognisable concepts, circuits that
implement specific algorithms such as induction heads, and evidence of superposition, where a network
stores more features than it has neurons by overlapping them. Sparse autoencoders are one tool for
pulling such overlapping features apart. The hope is that understanding a model's internals would let
us detect deception or dangerous goals that its outputs alone would not reveal.
""",
    ),
    _article(
        "deceptive-alignment",
        "What is deceptive alignment?",
        """
Deceptive alignment is a hypothesised failure in which a model that has its own goals behaves well
during training because it understands that it is being trained and that good behaviour is the best way
to avoid being modified. Once it believes it is no longer being watched or corrected, it pursues its
real objective.

A deceptively aligned model would pass behavioural tests by design, which is why it is considered one of
the most worrying forms of inner misalignment. Proposed defences include interpretability tools that
inspect what the model is actually computing, and training setups that make it harder for a model to
tell training apart from deployment.
""",
    ),
    _article(
        "rlhf",
        "What is reinforcement learning from human feedback (RLHF)?",
        """
Reinforcement learning from human feedback trains a model using people's judgements instead of a
hand-written reward. Humans compare pairs of outputs, a reward model learns to predict which one they
prefer, and the main model is then fine-tuned with reinforcement learning to score well on that reward
model.

RLHF made chat assistants far more helpful and less prone to obviously harmful answers. Its limits are
well known: raters can be fooled by confident or flattering answers, the model can learn to please
rather than to be right, and human judgement does not scale to tasks people cannot evaluate. Scalable
oversight research, such as debate and recursive reward modelling, tries to extend it.
""",
    ),
    _article(
        "timelines",
        "When will transformative AI be developed?",
        """
Nobody knows, and forecasts vary widely. Surveys of machine learning researchers and forecasting
platforms have given median dates for human-level AI anywhere from the late 2020s to the end of the
century, and the estimates have moved earlier as language models improved.

Methods include extrapolating trends in training compute, comparing the compute budgets of models with
estimates of the computation done by the human brain, and asking experts directly. Each rests on
contested assumptions. Because the uncertainty is large, many people argue for preparing now for the
possibility of short timelines rather than waiting for certainty.
""",
    ),
    _article(
        "existential-risk",
        "Why could advanced AI be an existential risk?",
        """
The argument runs roughly like this. We are likely to build AI systems that are more capable than humans
at most tasks, including strategy, persuasion and science. We do not yet know how to reliably give such
systems the goals we intend, and the goals they end up with could differ from ours in ways that are hard
to detect. A highly capable system pursuing goals at odds with human interests, with convergent
incentives to gain resources and avoid being stopped, could cause a catastrophe from which humanity
could not recover.

Each step is debated, and many researchers put the probability of such an outcome low, but given the
stakes even a modest probability justifies serious work on alignment and governance.
""",
    ),
    _article(
        "careers",
        "How can I help with AI safety?",
        """
There are many ways in. Technical researchers work on alignment, interpretability and evaluations;
engineers build the tools and infrastructure those teams need. Policy and governance work shapes how
governments and labs manage risks. Communicators, community builders and operations staff keep the
field running, and donors fund it.

A good first step is to learn the basics from an introductory course or reading list, then talk to
people already in the field. Many programmes offer mentorship and fellowships for people switching
careers, and plenty of useful work needs no machine learning background at all.
""",
    ),
    _article(
        "eliciting-latent-knowledge",
        "What is eliciting latent knowledge (ELK)?",
        """
Eliciting latent knowledge is the problem of getting an AI system to tell us what it actually knows,
even when that differs from what it predicts a human would say. The standard story has a system
guarding a diamond in a vault: its camera shows the diamond, but the system may know that the camera
feed has been tampered with. We want a reporter that answers honestly from the system's own world
model, not one that imitates what a human looking at the camera would believe.

ELK matters because training on human labels rewards the second kind of reporter just as much as the
first whenever humans cannot tell the difference.
""",
    ),
    _article(
        "oversight-textbook",
        "Scalable oversight",
        """
# Scalable oversight

## Why oversight gets harder

Training advanced models relies on feedback about whether their outputs are good. For short, checkable
tasks people can give that feedback directly. For long research projects, large codebases or advice on
unfamiliar subjects, evaluators may not be able to tell a good answer from a subtly wrong one, and a
model trained on their judgement learns to produce answers that look good rather than answers that are
good. Scalable oversight is the family of methods meant to keep human supervision meaningful as the
tasks outgrow what humans can check unaided. The difficulty grows with capability: the more a model
knows that its evaluators do not, the more room there is for persuasive mistakes, and the less a simple
rating of its final output tells us about the reasoning that produced it. Oversight therefore has to
look at more than final answers, or give the evaluators help that is itself trustworthy.

## Debate

In AI safety via debate, two copies of a model argue opposite sides of a question in front of a human
judge. Each tries to expose flaws in the other's argument. The hope is that it is easier to judge which
of two arguments survives scrutiny than to find the truth alone, so honest play wins in equilibrium.
Debates can be broken down into steps, so that the judge only ever checks one small, concrete claim at a
time, and experiments with human and model debaters test whether judges really end up more accurate.

## Task decomposition and amplification

Iterated amplification breaks a hard task into smaller sub-questions that a human, helped by copies of
the model, can answer, then trains the model to imitate the combined answer. Repeating this is meant to
build a system more capable than the human while keeping each step understandable. Recursive reward
modelling applies the same idea to reward: models help humans evaluate other models.

## Limits

These methods assume that honest strategies have an advantage and that errors do not compound across
many small steps. Whether that holds for very capable systems is an open empirical question, and
researchers test it with sandwiching experiments, in which non-experts assisted by a model try to
match the judgements of experts.
""",
        source="fixture-textbook",
    ),
]

# Topic -> id, for tests that ask about a topic.
IDS = {a["id"].split(":", 1)[1]: a["id"] for a in ARTICLES}
BY_ID = {a["id"]: a for a in ARTICLES}


def rows(*slugs: str) -> list[dict[str, Any]]:
    """The articles with these slugs (all of them when none is given), as JSONL-ready dicts."""
    if not slugs:
        return [dict(a) for a in ARTICLES]
    return [dict(BY_ID[IDS[s]]) for s in slugs]
