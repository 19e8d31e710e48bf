//! Wave ordering: a stable topological sort that also reports every dependency cycle.
//!
//! Stable means: among waves whose dependencies are all placed, the one written first in the
//! file comes first, so the plan reads in the order the author wrote, constrained by `after`.

/// The order of nodes `0..depends_on.len()`, where `depends_on[i]` lists the nodes that must come
/// before `i`; or every cycle found (each as the nodes along it, in dependency direction).
pub fn topological_order(depends_on: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let count = depends_on.len();
    // `settled` is placed in the order or, for nodes on a reported cycle, set aside.
    let mut settled = vec![false; count];
    let mut order = Vec::with_capacity(count);
    let mut cycles = Vec::new();
    loop {
        let ready =
            (0..count).find(|&node| !settled[node] && depends_on[node].iter().all(|&d| settled[d]));
        if let Some(node) = ready {
            settled[node] = true;
            order.push(node);
            continue;
        }
        let Some(start) = (0..count).find(|&node| !settled[node]) else {
            break;
        };
        let cycle = cycle_from(start, depends_on, &settled);
        for &node in &cycle {
            settled[node] = true;
        }
        cycles.push(cycle);
    }
    if cycles.is_empty() {
        Ok(order)
    } else {
        Err(cycles)
    }
}

/// Follows unsettled dependencies from `start` until a node repeats; every unsettled node that
/// is not ready has such a dependency, so the walk ends on a cycle.
fn cycle_from(start: usize, depends_on: &[Vec<usize>], settled: &[bool]) -> Vec<usize> {
    let mut walk = vec![start];
    let mut current = start;
    loop {
        let Some(&next) = depends_on[current].iter().find(|&&d| !settled[d]) else {
            // Unreachable for a node that was not ready; return the walk rather than panic.
            return walk;
        };
        if let Some(position) = walk.iter().position(|&n| n == next) {
            let mut cycle = walk.split_off(position);
            // Dependency direction reversed, so the cycle reads "first runs before second".
            cycle.reverse();
            return cycle;
        }
        walk.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independent_nodes_keep_file_order() {
        assert_eq!(
            topological_order(&[vec![], vec![], vec![]]),
            Ok(vec![0, 1, 2])
        );
    }

    #[test]
    fn dependencies_come_first_and_ties_keep_file_order() {
        // 0 after 2, 1 after 0, 3 independent.
        let order = topological_order(&[vec![2], vec![0], vec![], vec![]]).unwrap();
        assert_eq!(order, vec![2, 0, 1, 3]);
        // A diamond: 3 after 1 and 2, both after 0.
        let order = topological_order(&[vec![], vec![0], vec![0], vec![1, 2]]).unwrap();
        assert_eq!(order, vec![0, 1, 2, 3]);
    }

    #[test]
    fn cycles_are_reported_with_their_members() {
        // 0 -> 1 -> 2 -> 0 (each after the previous), 3 after 0: only the cycle is reported.
        let cycles = topological_order(&[vec![2], vec![0], vec![1], vec![0]]).unwrap_err();
        assert_eq!(cycles.len(), 1);
        let mut members = cycles[0].clone();
        members.sort();
        assert_eq!(members, vec![0, 1, 2]);
    }

    #[test]
    fn self_dependencies_and_separate_cycles_are_all_found() {
        let cycles = topological_order(&[vec![0], vec![2], vec![1], vec![]]).unwrap_err();
        assert_eq!(cycles.len(), 2);
        assert_eq!(cycles[0], vec![0]);
        let mut second = cycles[1].clone();
        second.sort();
        assert_eq!(second, vec![1, 2]);
    }
}
