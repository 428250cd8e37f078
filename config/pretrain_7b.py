# The paper's stage-1 adaptation: Qwen2.5-Coder-7B -> masked diffusion, attention
# annealed from causal to full over 10k steps, on a large code corpus.
#   huggingface-cli download Qwen/Qwen2.5-Coder-7B --local-dir models/Qwen2.5-Coder-7B
#   python prepare_data.py --source=<code corpus> --text_column=content --tokenizer=models/Qwen2.5-Coder-7B \
#       --out_dir=data/code
#   torchrun --nproc_per_node=8 train_pretrain.py config/pretrain_7b.py      (x 10 nodes in the paper)
# Qwen2.5-Coder's tokenizer has no <|mask|>: prepare_data.py and train_pretrain.py add DiffuCoder's (id 151666).
import math
import os

init_from = "models/Qwen2.5-Coder-7B"
out_dir = "out/pretrain_7b"
data_dir = "data/code"
block_size = 4096
anneal_steps = 10000
truncate_fraction = 0.01  # 1% of sequences cut to a random length
# per-GPU batch 2 x 4096 = 8,192 tokens; 8 GPUs: 65,536 tokens per step; 80 GPUs (the paper's 10 x 8): 655,360
batch_size = 2
grad_accum = 1
learning_rate = 2e-5
warmup_steps = 20000
min_lr_ratio = 0.1
# The paper's 65B tokens, whatever the node count: torchrun sets WORLD_SIZE (all ranks of all nodes) before this
# file runs, so the cosine schedule spans the budget. 8 GPUs: 65e9 / 65,536 = 991,822 steps (10x the paper's
# wall time); 80 GPUs: 65e9 / 655,360 = 99,183 steps (the paper: 100,000). Change batch_size, grad_accum or
# block_size here, not on the command line (that would not redo this arithmetic; the run prints its token total).
_token_budget = 65e9
_tokens_per_step = int(os.environ.get("WORLD_SIZE", 1)) * batch_size * grad_accum * block_size
max_steps = math.ceil(_token_budget / _tokens_per_step)
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
dtype = "bfloat16"
parallel = "fsdp"
activation_checkpointing = True
eval_interval = 1000
ckpt_interval = 1000
# Memory per GPU (estimate, not measured): fp32 params + grads + AdamW = 16 bytes x 7.6B / 8 GPUs = 15 GB sharded;
# activations with per-block checkpointing: 28 layers x 2 x 4096 x 3584 x 2 bytes = 1.6 GB of block inputs plus one
# block's recomputation (~3 GB) and the logits of the masked rows (~4k x 152k x 4 bytes = 2.5 GB): ~25 GB of 80 GB.
