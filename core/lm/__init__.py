"""LM infrastructure: what backends build on, and how every LM call is metered.

    base          PearlLM (plan -> send -> complete), ChatRequest, Completion, fit_to_budget
    metered       MeteredLM / instrument: usage, timing and the `chat` span for any dspy.BaseLM
    usage         per-step usage meters (context-local, thread-exact)
    schema        DSPy response_format -> JSON schema; bounds that keep JSON answers whole
    openai_wire   the OpenAI chat-completions body and response, shared by HTTP backends
    http          HttpClient: retries, timeouts, trace headers, clear errors
    transport     the event-loop thread all HTTP I/O runs on (async I/O under the thread API)
    microbatch    coalescing concurrent calls into one server batch
    chat_template rendering a model's chat template for raw-prompt endpoints
    likelihood    yes/no answers read from first-token probabilities (any backend with logprobs)
    server_process starting and stopping a local model server

May import pearl.host, pearl.traces, pearl.types and pearl.errors; never a plugin.
"""
