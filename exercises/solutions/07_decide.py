"""07 · Try it: change one answer and watch the decision flip.

Score the WordPress preset, pick the first change the sensitivity table lists, and score the answers
again with that one answer changed. Predict the new recommendation from the table before you run it.

Answer: exactly the choice the sensitivity table named for that change: the table is computed by
re-scoring, so it never promises a flip the model would not make.
"""

from __future__ import annotations

from emailkit import decide


def main() -> None:
    ### BEGIN SOLUTION
    answers = decide.load_criteria().presets["wordpress"].answers
    before = decide.score(answers)
    flip = before.sensitivity[0]
    after = decide.score({**before.answers, flip.question: flip.new_answer})
    ### END SOLUTION
    print(f"before: {before.title}; change {flip.question}: {flip.answer} -> {flip.new_answer}; "
          f"after: {after.title} (predicted {flip.choice})")
    assert after.choice == flip.choice != before.choice


if __name__ == "__main__":
    main()
