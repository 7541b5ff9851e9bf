//! OAP's `RunningRule.Window.AlarmStateMachine`: firing, silence and recovery observation per
//! (rule, entity), advanced once per evaluation minute.

/// Where an entity stands for one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum State {
    /// Nothing to report.
    Normal,
    /// Fired this check: a message is sent.
    Firing,
    /// Still true, but within the silence period: nothing is sent.
    SilencedFiring,
    /// False, waiting for the observation (and silence) period to pass.
    ObservingRecovery,
    /// Recovered this check: a recovery message is sent.
    Recovered,
}

impl State {
    /// OAP's name (`NORMAL`, `FIRING`, ...), as the status API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Normal => "NORMAL",
            State::Firing => "FIRING",
            State::SilencedFiring => "SILENCED_FIRING",
            State::ObservingRecovery => "OBSERVING_RECOVERY",
            State::Recovered => "RECOVERED",
        }
    }
}

/// The countdowns and the current state, exactly as OAP keeps them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateMachine {
    /// Checks of silence left (negative: not silent).
    pub silence_countdown: i64,
    /// Checks of recovery observation left.
    pub recovery_observation_countdown: i64,
    /// The rule's silence period.
    pub silence_period: i64,
    /// The rule's recovery observation period.
    pub recovery_observation_period: i64,
    /// The current state.
    pub state: State,
}

impl StateMachine {
    /// A machine in `NORMAL`.
    pub fn new(silence_period: u32, recovery_observation_period: u32) -> Self {
        StateMachine {
            silence_countdown: -1,
            recovery_observation_countdown: i64::from(recovery_observation_period),
            silence_period: i64::from(silence_period),
            recovery_observation_period: i64::from(recovery_observation_period),
            state: State::Normal,
        }
    }

    /// The expression was true this check.
    pub fn on_match(&mut self) {
        self.silence_countdown -= 1;
        match self.state {
            State::Normal => self.transition(State::Firing),
            State::SilencedFiring | State::ObservingRecovery | State::Recovered => {
                if self.silence_countdown < 0 {
                    self.transition(State::Firing)
                } else {
                    self.transition(State::SilencedFiring)
                }
            }
            State::Firing => {
                if self.silence_countdown >= 0 {
                    self.transition(State::SilencedFiring)
                }
            }
        }
    }

    /// The expression was false (or had no value) this check.
    pub fn on_mismatch(&mut self) {
        self.recovery_observation_countdown -= 1;
        self.silence_countdown -= 1;
        let done = self.recovery_observation_countdown < 0 && self.silence_countdown < 0;
        match self.state {
            State::Firing | State::SilencedFiring => {
                if done {
                    self.transition(State::Recovered)
                } else {
                    self.transition(State::ObservingRecovery)
                }
            }
            State::ObservingRecovery => {
                if done {
                    self.transition(State::Recovered)
                }
            }
            State::Recovered => self.transition(State::Normal),
            State::Normal => {}
        }
    }

    fn transition(&mut self, to: State) {
        self.state = to;
        match to {
            State::Normal => {
                self.recovery_observation_countdown = self.recovery_observation_period;
            }
            State::Firing => {
                self.silence_countdown = self.silence_period;
                self.recovery_observation_countdown = self.recovery_observation_period;
            }
            State::SilencedFiring => {}
            State::ObservingRecovery => {
                self.recovery_observation_countdown = self.recovery_observation_period - 1;
            }
            State::Recovered => {
                self.recovery_observation_countdown = self.recovery_observation_period;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(machine: &mut StateMachine, matches: &str) -> Vec<State> {
        matches
            .chars()
            .map(|c| {
                if c == '1' {
                    machine.on_match()
                } else {
                    machine.on_mismatch()
                }
                machine.state
            })
            .collect()
    }

    #[test]
    fn silence_suppresses_refiring_until_the_countdown_runs_out() {
        use State::*;
        // silence-period 2: fires, silent twice, fires again.
        let mut m = StateMachine::new(2, 0);
        assert_eq!(
            run(&mut m, "1111"),
            [Firing, SilencedFiring, SilencedFiring, Firing]
        );
    }

    #[test]
    fn recovery_waits_for_the_observation_period_and_the_silence() {
        use State::*;
        // OAP's e2e comp_rule: period 5 (silence 5), recovery-observation-period 3.
        let mut m = StateMachine::new(5, 3);
        assert_eq!(
            run(&mut m, "1000000"),
            [
                Firing,
                ObservingRecovery,
                ObservingRecovery,
                ObservingRecovery,
                ObservingRecovery,
                ObservingRecovery,
                Recovered
            ]
        );
        assert_eq!(run(&mut m, "0"), [Normal]);
    }

    #[test]
    fn without_observation_recovery_follows_the_silence() {
        use State::*;
        let mut m = StateMachine::new(1, 0);
        assert_eq!(run(&mut m, "1"), [Firing]);
        // Silence 1: the first false check is still within it.
        assert_eq!(run(&mut m, "00"), [ObservingRecovery, Recovered]);
        let mut m = StateMachine::new(0, 0);
        assert_eq!(run(&mut m, "10"), [Firing, Recovered]);
    }

    #[test]
    fn a_true_check_while_observing_fires_again_once_silence_is_over() {
        use State::*;
        let mut m = StateMachine::new(1, 3);
        assert_eq!(
            run(&mut m, "1001"),
            [Firing, ObservingRecovery, ObservingRecovery, Firing]
        );
    }
}
