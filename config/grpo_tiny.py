# coupled-GRPO on the tiny SFT model and the tiny tasks' train split, sized for a 2-core CPU.
# Needs: config/sft_tiny.py trained (out/sft_tiny) and python prepare_data.py --kind=tasks
init_from = "out/sft_tiny"
out_dir = "out/grpo_tiny"
train_file = "data/tasks/train.jsonl"
eval_file = "data/tasks/test.jsonl"
eval_n = 100  # held-out tasks, greedy pass@1 at the start, every eval_interval steps and at the end
eval_interval = 10
# rollout: 4 prompts x 8 completions = 32 sequences per step; answers are <= 56 tokens
prompts_per_step = 4
num_generations = 8
max_completion_length = 64
diffusion_steps = 32  # 2 tokens per step (the paper's "2x speed" setting) to halve rollout time on CPU
temperature = 1.2
# update: 32 sequences x 3 passes in micro-batches of 8, mu = 2 updates per rollout
micro_batch_size = 8
num_iterations = 2
beta = 0.01
# a tiny model takes a larger step than the 7B's 1e-6, but not much larger: at 5e-5 and 1e-4 the policy drifts
# (KL to the start ~1 within 10 steps) and pass@1 falls, even on the prompts it trains on (README, results log)
learning_rate = 2e-5
max_steps = 20
ref_sync_steps = 16
ckpt_interval = 5
dtype = "auto"  # bfloat16 where the CPU/GPU has native bf16 (AVX512-BF16, AMX, CUDA), else float32
