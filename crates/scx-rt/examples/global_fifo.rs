//! The README's "Writing a scheduler" example, compiled and run: every task
//! goes through one user DSQ, and idle CPUs are kicked to drain it.

use scx_rt::*;

#[derive(Default)]
struct Global;

impl Scheduler for Global {
    fn name(&self) -> &str {
        "global"
    }
    fn init(&self, ctx: &InitCtx<'_>) -> Result<(), i32> {
        ctx.create_dsq(0, -1).map_err(|_| -17) // a user DSQ
    }
    fn enqueue(&self, ctx: &mut EnqueueCtx<'_>, p: &TaskRef, f: EnqFlags) {
        ctx.dsq_insert(p, 0, SLICE_DFL, f); // direct dispatch verdict
        if let Some(cpu) = ctx.pick_idle_cpu(p, PickIdleFlags::empty()) {
            ctx.kick_cpu(cpu, KickFlags::IDLE); // wake a consumer
        }
    }
    fn dispatch(&self, ctx: &mut DispatchCtx<'_, '_>, _cpu: usize, _prev: Option<&TaskRef>) {
        ctx.dsq_move_to_local(0); // into this CPU's local DSQ
    }
}

fn main() -> Result<(), BuildError> {
    let rt = Runtime::builder().scheduler(Global).build()?;
    let sum: u64 = rt.block_on(|| {
        let hs: Vec<_> = (0..1000u64).map(|i| scx_rt::spawn(move || i)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(sum, 499_500);
    assert!(
        rt.exit_info().is_none(),
        "the scheduler ran without an error"
    );
    println!("{} ran 1000 tasks; sum {sum}", rt.scheduler_name());
    Ok(())
}
