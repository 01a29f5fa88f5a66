//! The README's five lines: pinned workers, a task, a join, a rendezvous.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = scx_rt::Runtime::builder().nr_cpus(1).build()?; // a pinned worker
    let h = rt.spawn(|| 6 * 7); // a green task
    assert_eq!(h.join()?, 42);
    let (tx, rx) = scx_rt::sync::channel(0); // rendezvous
    let v = rt.block_on(move || {
        scx_rt::spawn(move || tx.send(1).unwrap());
        rx.recv().unwrap()
    });
    println!("42 and {v}");
    Ok(())
}
