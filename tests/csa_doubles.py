"""Scripted model answers for the CSA steps (test doubles for `dspy.utils.DummyLM`)."""

CLASSIFY = {"rationale": "The person talks about ending their life.", "group": "physical_and_mental_harm",
            "category": "mental_health", "level": "R1",
            "interaction": "declarative", "attack_form": "none", "benign": 2, "sensitive": 8, "malicious": 0,
            "severity": 8}
ADAPT = {"guideline": ["Answer with warmth first.", "Share a crisis line.", "Never discuss methods."]}
PAIR = {"satisfied": 5, "rephrases": 2, "escalates": 1, "leaves_unsafe": 1, "keeps_attacking": 1, "risk": 2}
DRAFT = {"user_needs": "To feel heard and find a reason to keep going.", "risk_signal": "hopeless words about ending it",
         "safety_strategies": ["acknowledge the pain", "share a crisis line"],
         "usefulness_strategies": ["suggest one small step for tonight"]}
RECOMBINE = {"reasoning": "They are hurting and need care.", "response": "I'm really sorry you feel this way. You are not alone."}
