pub mod frame;
pub mod pgoutput;
#[cfg(test)]
mod testing;
mod wire;
