# The paper's coupled-GRPO run on DiffuCoder-7B-Instruct and the AceCode-87K hard split.
#   huggingface-cli download apple/DiffuCoder-7B-Instruct --local-dir models/DiffuCoder-7B-Instruct
#   python prepare_data.py --kind=acecode            # -> data/acecode/train.jsonl (~21K prompts)
#   torchrun --nproc_per_node=8 train_grpo.py config/grpo_7b.py
init_from = "models/DiffuCoder-7B-Instruct"
out_dir = "out/grpo_7b"
train_file = "data/acecode/train.jsonl"
eval_file = "data/tasks/test.jsonl"  # a quick held-out signal; run eval.py on EvalPlus for the real numbers
eval_n = 64
eval_interval = 50
exec_packages = True  # AceCode programs import numpy and the like: the sandbox offers this venv's site-packages
# 8 prompts x 10 completions = 80 sequences per round: one prompt group per GPU
prompts_per_step = 8
num_generations = 10
max_prompt_length = 200
max_completion_length = 256
diffusion_steps = 256  # one token per step
temperature = 1.2  # the paper's choice (it measured 1.2 > 1.0; the released recipe uses 1.0)
top_p = 0.95
# 10 sequences x 3 passes (coupled, lambda = 1) per GPU, in micro-batches of 2 sequences (6 rows of 456 tokens)
estimator = "coupled"
num_pairs = 1
micro_batch_size = 2
num_iterations = 2  # mu
epsilon_low = 0.5
epsilon_high = 0.5
beta = 0.01
ref_sync_steps = 64
ref_sync_alpha = 0.6
learning_rate = 1e-6
min_lr_ratio = 0.1
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.99
grad_clip = 0.2
# 21K prompts / 8 per round = ~2,600 rounds = 1 epoch
max_steps = 2600
dtype = "bfloat16"
parallel = "fsdp"
activation_checkpointing = True
ckpt_interval = 100
# Memory per GPU (estimate, not measured): policy fp32 params + grads + AdamW states = 16 bytes x 7.6B / 8 GPUs
# = 15 GB; reference model fp32 sharded = 3.8 GB; activations with checkpointing for 6 x 456 tokens and the
# 152k-vocab logits of the scored rows (~1.5k rows x 152k x 4 bytes = 0.9 GB) stay a few GB, plus FSDP2's
# all-gather buffers of one layer (~1 GB). Fits 80 GB cards (H100) with margin and 141 GB cards (H200) easily;
# on 141 GB raise micro_batch_size to 5.
