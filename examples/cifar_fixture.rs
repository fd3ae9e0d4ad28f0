//! Writes a CIFAR-10-format directory made from the embedded MNIST digits, colored and padded
//! to 32×32 (`data::write_digit_fixture`), for trying the ResNet-20 experiment without CIFAR-10:
//! `cargo run --release --example cifar_fixture -- DIR [PER_BATCH] [TEST]` (defaults 1,000 per
//! training file and 1,000 test images, the most the embedded set holds).

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        anyhow::bail!("usage: cifar_fixture DIR [PER_BATCH] [TEST]");
    };
    let mut count = |name: &str| -> anyhow::Result<usize> {
        match args.next() {
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("{name} must be a whole number, got {v:?}")),
            None => Ok(1000),
        }
    };
    let (per_batch, test) = (count("PER_BATCH")?, count("TEST")?);
    bitsearch::data::write_digit_fixture(std::path::Path::new(&dir), per_batch, test)?;
    println!(
        "wrote {} training and {test} test images to {dir}",
        5 * per_batch
    );
    Ok(())
}
