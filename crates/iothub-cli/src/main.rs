//! The `iothub` command line.

fn main() {
    println!("iothub");
}
