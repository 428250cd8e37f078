# coupled-GRPO on the tiny SFT model and the tiny tasks' train split, sized for a 2-core CPU.
# Needs: config/sft_tiny.py trained (out/sft_tiny) and python prepare_data.py --kind=tasks
init_from = "out/sft_tiny"
out_dir = "out/grpo_tiny"
train_file = "data/tasks/train.jsonl"
eval_file = "data/tasks/test.jsonl"
eval_n = 100  # held-out tasks, greedy pass@1 at the start, every eval_interval steps and at the end
eval_interval = 10
# rollout: 16 prompts x 8 completions = 128 sequences per step; answers are <= 56 tokens. Half of the groups
# have no reward variance (all pass or all fail): 16 prompts leave ~8 groups with a signal per step
prompts_per_step = 16
num_generations = 8
max_completion_length = 64
diffusion_steps = 32  # 2 tokens per step (the paper's "2x speed" setting) to halve rollout time on CPU
temperature = 1.2
# update: 128 sequences x 3 passes in micro-batches of 8, mu = 2 updates per rollout
micro_batch_size = 8
num_iterations = 2
beta = 0.01
# held-out pass@1 falls at lr 2e-5 to 1e-4 with 4 prompts per step (0.325 -> 0.300 / 0.245 on 200 tasks after 30
# steps) and holds at 5e-6 with 16 (README, results log). The warm-up keeps Adam's first step (every weight
# moved by ~lr whatever its gradient) from jumping: KL to the reference 0.95 -> 0.004 after the first update
learning_rate = 5e-6
warmup_steps = 2
max_steps = 10
ref_sync_steps = 16
ckpt_interval = 5
dtype = "auto"  # bfloat16 where the CPU/GPU has native bf16 (AVX512-BF16, AMX, CUDA), else float32
