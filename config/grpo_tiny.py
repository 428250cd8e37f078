# coupled-GRPO on the tiny SFT model and the tiny tasks' train split, sized for a 2-core CPU.
# Needs: config/sft_tiny.py trained (out/sft_tiny) and python prepare_data.py --kind=tasks
init_from = "out/sft_tiny"
out_dir = "out/grpo_tiny"
train_file = "data/tasks/train.jsonl"
eval_file = "data/tasks/test.jsonl"
eval_n = 100  # held-out tasks, greedy pass@1 at the start, every eval_interval steps and at the end
eval_interval = 10
# rollout: 8 prompts x 8 completions = 64 sequences per step, decoded as eval.py decodes (one token per step) but
# sampled at temperature 1; answers are <= 56 tokens. These are the settings of the six-family RL probe
# (bench/toy_rl.py --family=all). On this pipeline they moved held-out pass@1 by -0.006 +- 0.012 over 3 seeds
# (0.376 -> 0.346 / 0.386 / 0.378; d1 -0.002 +- 0.010, docs/results.md): RL does not pay at this scale yet, and this
# stage shows the machinery at a measured setting
prompts_per_step = 8
num_generations = 8
max_completion_length = 64
diffusion_steps = 64
temperature = 1.0
# update: 64 sequences x 3 passes in micro-batches of 16, mu = 2 updates per rollout
micro_batch_size = 16
num_iterations = 2
beta = 0.01
# a short warm-up keeps Adam's first step (every weight moved by ~lr whatever its gradient) from jumping: KL to the
# reference 0.95 -> 0.004 after the first update (docs/results.md)
learning_rate = 5e-5
warmup_steps = 2
max_steps = 30
ckpt_interval = 10
dtype = "auto"  # bfloat16 where the CPU/GPU has native bf16 (AVX512-BF16, AMX, CUDA), else float32
