//! What a workload *is*, apart from how scx-rt or a peer runs it: its
//! name, sizes, cases, constants and row builder, one file per workload that
//! a peer also runs. Shared vocabulary: `peers/` and `workloads/` sit above
//! it, and it depends only on `ctx`, `stats` and `report`.

pub mod chained_spawn;
pub mod echo;
pub mod pingpong;
pub mod ring;
pub mod skynet;
pub mod spawn;
pub mod switch;
pub mod wakeup;
pub mod yield_many;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Options;
    use crate::ctx::Ctx;

    /// `--iters N` / `--tasks N` mean exactly N operations and `--reps 1`
    /// one measured repetition, whatever the defaults: the instruction
    /// counts of `benches/instructions.sh` difference two such runs.
    #[test]
    fn sizes_are_exactly_the_options() {
        for quick in [false, true] {
            let ctx = Ctx {
                cpus: vec![0, 1],
                opts: Options {
                    iters: Some(7),
                    tasks: Some(9),
                    reps: Some(1),
                    quick,
                    ..Default::default()
                },
            };
            let s = switch::sizes(&ctx);
            assert_eq!((s.iters, s.reps), (7, 1));
            let s = spawn::sizes(&ctx);
            assert_eq!((s.tasks, s.reps), (9, 1));
            let s = chained_spawn::sizes(&ctx);
            assert_eq!((s.tasks, s.reps), (9, 1));
            assert_eq!(pingpong::sizes(&ctx).iters, 7);
        }
    }
}
