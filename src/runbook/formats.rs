//! The shapes of the AWS identifiers a runbook names, checked without calling AWS.
//!
//! Each check returns the message a user sees when the value is wrong: what the value is not,
//! then what a valid one looks like. Shapes follow the AWS documentation; they are strict where
//! a typo would otherwise only surface at 3 a.m. (a region `us-est-1`, an 11-digit account).

/// The directions that appear in AWS region names (`us-east-1`, `ap-southeast-2`, `il-central-1`).
const REGION_DIRECTIONS: [&str; 9] = [
    "east",
    "west",
    "north",
    "south",
    "central",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// A 12-digit AWS account ID.
pub fn check_account_id(value: &str) -> Result<(), String> {
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not an AWS account ID (expected 12 digits, e.g. \"111111111111\")"
        ))
    }
}

/// An AWS region: `<geo>[-gov|-iso*]-<direction>-<n>`, e.g. `us-east-1`, `us-gov-west-1`.
pub fn check_region(value: &str) -> Result<(), String> {
    if is_region(value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not an AWS region (expected a region code such as \"us-east-1\", \"eu-central-1\", \"ap-southeast-2\" or \"us-gov-west-1\")"
        ))
    }
}

fn is_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let (geo, middle, number) = match parts.as_slice() {
        [geo, direction, number] => (*geo, vec![*direction], *number),
        [geo, partition, direction, number] => (*geo, vec![*partition, *direction], *number),
        _ => return false,
    };
    let geo_ok = geo.len() == 2 && geo.bytes().all(|b| b.is_ascii_lowercase());
    let partition_ok = match middle.as_slice() {
        [_] => true,
        [partition, _] => {
            *partition == "gov"
                || (partition.starts_with("iso")
                    && partition.bytes().all(|b| b.is_ascii_lowercase()))
        }
        _ => false,
    };
    let direction_ok = middle.last().is_some_and(|d| REGION_DIRECTIONS.contains(d));
    let number_ok = !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
        && !number.starts_with('0');
    geo_ok && partition_ok && direction_ok && number_ok
}

/// A DRS source server ID: `s-` and 17 letters or digits.
pub fn check_source_server_id(value: &str) -> Result<(), String> {
    let ok = value
        .strip_prefix("s-")
        .is_some_and(|rest| rest.len() == 17 && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a DRS source server ID (expected s- and 17 letters or digits, e.g. s-1234567890abcdef0)"
        ))
    }
}

/// An EC2 resource ID: `prefix` and 8 or 17 lowercase hex digits.
fn check_ec2_id(value: &str, prefix: &str, what: &str, example: &str) -> Result<(), String> {
    let ok = value.strip_prefix(prefix).is_some_and(|rest| {
        matches!(rest.len(), 8 | 17)
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not {what} (expected {prefix} and 8 or 17 hex digits, e.g. {example})"
        ))
    }
}

/// An EC2 subnet ID: `subnet-` and 8 or 17 hex digits.
pub fn check_subnet_id(value: &str) -> Result<(), String> {
    check_ec2_id(value, "subnet-", "a subnet ID", "subnet-0123456789abcdef0")
}

/// An EC2 security group ID: `sg-` and 8 or 17 hex digits.
pub fn check_security_group_id(value: &str) -> Result<(), String> {
    check_ec2_id(value, "sg-", "a security group ID", "sg-0123456789abcdef0")
}

/// An EC2 instance type: family and size, e.g. `m5.large`, `c7gn.16xlarge`.
pub fn check_instance_type(value: &str) -> Result<(), String> {
    let ok = value.split_once('.').is_some_and(|(family, size)| {
        family.len() >= 2
            && family.starts_with(|c: char| c.is_ascii_lowercase())
            && family
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !size.is_empty()
            && size
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not an EC2 instance type (expected family.size, e.g. m5.large)"
        ))
    }
}

/// The parts of an ELBv2 target group ARN that validation compares with the runbook's sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupArn {
    pub region: String,
    pub account_id: String,
    pub name: String,
}

const TARGET_GROUP_EXAMPLE: &str =
    "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments/0123456789abcdef";

/// An ELBv2 target group ARN:
/// `arn:<partition>:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<16 hex>`.
pub fn parse_target_group_arn(value: &str) -> Result<TargetGroupArn, String> {
    let wrong = |why: &str| {
        format!(
            "{value:?} is not a target group ARN: {why} (expected arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<16 hex digits>, e.g. {TARGET_GROUP_EXAMPLE})"
        )
    };
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(wrong("it does not have the six colon-separated parts"));
    };
    if *arn != "arn" || !is_partition(partition) {
        return Err(wrong("it does not start with arn:aws"));
    }
    if *service != "elasticloadbalancing" {
        return Err(wrong(&format!(
            "the service is {service:?}, not elasticloadbalancing"
        )));
    }
    if !is_region(region) {
        return Err(wrong(&format!("{region:?} is not a region")));
    }
    let expected = partition_of(region);
    if *partition != expected {
        return Err(wrong(&format!(
            "its partition {partition:?} is not that of region {region} ({expected:?})"
        )));
    }
    if check_account_id(account).is_err() {
        return Err(wrong(&format!("{account:?} is not a 12-digit account ID")));
    }
    let resource_parts: Vec<&str> = resource.split('/').collect();
    let ["targetgroup", name, id] = resource_parts.as_slice() else {
        return Err(wrong("the resource is not targetgroup/<name>/<id>"));
    };
    let name_ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !name_ok {
        return Err(wrong(&format!(
            "the name {name:?} is not 1 to 32 letters, digits or hyphens"
        )));
    }
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(wrong(&format!("the ID {id:?} is not 16 hex digits")));
    }
    Ok(TargetGroupArn {
        region: region.to_string(),
        account_id: account.to_string(),
        name: name.to_string(),
    })
}

/// The partition of a region, as AWS assigns them (`cn-north-1` is in `aws-cn`, ...).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("eu-isoe-") {
        "aws-iso-e"
    } else if region.starts_with("us-isof-") {
        "aws-iso-f"
    } else {
        "aws"
    }
}

fn is_partition(value: &str) -> bool {
    value == "aws"
        || value.strip_prefix("aws-").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        })
}

/// An IAM role ARN, `arn:aws:iam::<account>:role/<path/>name`; returns its account ID.
pub fn parse_role_arn(value: &str) -> Result<String, String> {
    let wrong = || {
        format!(
            "{value:?} is not an IAM role ARN (expected arn:aws:iam::<12-digit account>:role/<name>, e.g. arn:aws:iam::222222222222:role/drs-runbook)"
        )
    };
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
        return Err(wrong());
    };
    if !is_partition(partition) || check_account_id(account).is_err() {
        return Err(wrong());
    }
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return Err(wrong());
    };
    let name = path_and_name.rsplit('/').next().unwrap_or_default();
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    let path_ok = path_and_name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b));
    if name_ok && path_ok {
        Ok(account.to_string())
    } else {
        Err(wrong())
    }
}

/// An IAM role name (`[\w+=,.@-]`, 1 to 64 characters); `{peer}` may stand for the other
/// side's account ID (12 characters once replaced).
pub fn check_role_name(value: &str) -> Result<(), String> {
    let name = value.replace("{peer}", "111111111111");
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not an IAM role name (expected 1 to 64 letters, digits or +=,.@_-, without a path; `{{peer}}` stands for the other account's ID), e.g. \"DRSStagingAccountRole\""
        ))
    }
}

/// A KMS key reference: a key ARN, a key ID, an alias name (`alias/...`) or an alias ARN.
pub fn check_kms_key(value: &str) -> Result<(), String> {
    let wrong = || {
        format!(
            "{value:?} is not a KMS key (expected a key ARN arn:aws:kms:<region>:<account>:key/<id>, an alias ARN, a key ID or an alias name such as \"alias/drs-target-key\")"
        )
    };
    let plain = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    };
    if let Some(alias) = value.strip_prefix("alias/") {
        return if plain(alias) { Ok(()) } else { Err(wrong()) };
    }
    if value.starts_with("arn:") {
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        let ["arn", partition, "kms", region, account, resource] = parts.as_slice() else {
            return Err(wrong());
        };
        let resource_ok = resource
            .strip_prefix("key/")
            .or_else(|| resource.strip_prefix("alias/"))
            .is_some_and(plain);
        return if is_partition(partition)
            && is_region(region)
            && check_account_id(account).is_ok()
            && resource_ok
        {
            Ok(())
        } else {
            Err(wrong())
        };
    }
    if plain(value) && !value.contains('/') {
        Ok(())
    } else {
        Err(wrong())
    }
}

/// An STS external ID: 2 to 1224 characters of `[\w+=,.@:/-]`.
pub fn check_external_id(value: &str) -> Result<(), String> {
    let ok = (2..=1224).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not an STS external ID (expected 2 to 1224 letters, digits or +=,.@:/-_)"
        ))
    }
}

/// A Route 53 hosted zone ID: `Z` and up to 31 upper-case letters or digits.
pub fn check_hosted_zone_id(value: &str) -> Result<(), String> {
    let ok = value.strip_prefix('Z').is_some_and(|rest| {
        (1..=31).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a Route 53 hosted zone ID (expected Z and upper-case letters or digits, e.g. Z0123456789ABCDEFGHIJ)"
        ))
    }
}

/// A fully qualified DNS name: at least two labels of letters, digits, hyphens or underscores
/// (a leading `*` label is a wildcard), the trailing dot optional.
pub fn check_dns_name(value: &str) -> Result<(), String> {
    let name = value.strip_suffix('.').unwrap_or(value);
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |(index, label): (usize, &&str)| {
        (index == 0 && *label == "*")
            || (!label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    };
    if name.len() <= 253 && labels.len() >= 2 && labels.iter().enumerate().all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a fully qualified DNS name (expected labels of letters, digits and hyphens separated by dots, e.g. \"api.payments.example.com.\")"
        ))
    }
}

/// A runbook or wave name: it becomes part of step keys and file names, so it stays plain.
pub fn check_name(value: &str, what: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid {what} name (expected 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit, e.g. \"payments\")"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_twelve_digits() {
        assert!(check_account_id("111111111111").is_ok());
        for bad in [
            "11111111111",
            "1111111111111",
            "11111111111a",
            "",
            " 111111111111",
        ] {
            assert!(check_account_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_have_the_aws_shape() {
        for good in [
            "us-east-1",
            "eu-central-1",
            "ap-southeast-2",
            "us-gov-west-1",
            "cn-north-1",
            "il-central-1",
            "us-isob-east-1",
            "ap-southeast-7",
        ] {
            assert!(check_region(good).is_ok(), "{good}");
        }
        for bad in [
            "us-est-1",
            "us-east",
            "US-EAST-1",
            "useast1",
            "us-east-01",
            "usa-east-1",
            "us-foo-east-1",
            "",
            "us-east-1a",
        ] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_server_ids_are_s_and_seventeen_alphanumerics() {
        assert!(check_source_server_id("s-1234567890abcdef0").is_ok());
        let message = check_source_server_id("s-123").unwrap_err();
        assert_eq!(
            message,
            "\"s-123\" is not a DRS source server ID (expected s- and 17 letters or digits, e.g. s-1234567890abcdef0)"
        );
        for bad in [
            "i-1234567890abcdef0",
            "s-1234567890abcdef01",
            "s-1234567890abcdef_",
            "1234567890abcdef012",
        ] {
            assert!(check_source_server_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn target_group_arns_are_parsed_into_region_and_account() {
        let arn = parse_target_group_arn(TARGET_GROUP_EXAMPLE).unwrap();
        assert_eq!(arn.region, "us-west-2");
        assert_eq!(arn.account_id, "222222222222");
        assert_eq!(arn.name, "payments");
        for (bad, why) in [
            (
                "arn:aws:elasticloadbalancing:us-west-2:222222222222:targetgroup/payments/0123",
                "16 hex",
            ),
            (
                "arn:aws:elasticloadbalancing:us-west-2:2222:targetgroup/payments/0123456789abcdef",
                "12-digit",
            ),
            (
                "arn:aws:elasticloadbalancing:mars-1:222222222222:targetgroup/payments/0123456789abcdef",
                "not a region",
            ),
            (
                "arn:aws:ec2:us-west-2:222222222222:targetgroup/payments/0123456789abcdef",
                "elasticloadbalancing",
            ),
            (
                "arn:aws:elasticloadbalancing:us-west-2:222222222222:loadbalancer/app/x/0123456789abcdef",
                "targetgroup/",
            ),
            ("payments", "six"),
        ] {
            let message = parse_target_group_arn(bad).unwrap_err();
            assert!(message.contains(why), "{bad}: {message}");
        }
    }

    #[test]
    fn role_arns_name_their_account() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::222222222222:role/drs-runbook").unwrap(),
            "222222222222"
        );
        assert!(parse_role_arn("arn:aws:iam::222222222222:role/ops/dr/DrsRunbook").is_ok());
        for bad in [
            "arn:aws:iam::222222222222:user/drs-runbook",
            "arn:aws:iam:us-east-1:222222222222:role/drs-runbook",
            "arn:aws:iam::2222:role/drs-runbook",
            "arn:aws:iam::222222222222:role/",
            "drs-runbook",
        ] {
            assert!(parse_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kms_keys_and_role_names() {
        for good in [
            "alias/drs-target-key",
            "arn:aws:kms:us-west-2:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:111111111111:alias/drs-source-key",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
        ] {
            assert!(check_kms_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "alias/",
            "arn:aws:kms:us-west-2:2222:key/x",
            "arn:aws:iam::222222222222:role/x",
            "key id",
        ] {
            assert!(check_kms_key(bad).is_err(), "{bad}");
        }
        assert!(check_role_name("DRSCrossAccountAgentRole_{peer}").is_ok());
        assert!(check_role_name("service-role/DRSStagingAccountRole").is_err());
        assert!(check_role_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn hosted_zone_ids_and_dns_names() {
        assert!(check_hosted_zone_id("Z0123456789ABCDEFGHIJ").is_ok());
        assert!(check_hosted_zone_id("Z35SXDOTRQ7X7K").is_ok());
        for bad in ["z0123", "Z", "/hostedzone/Z0123", "Zabc"] {
            assert!(check_hosted_zone_id(bad).is_err(), "{bad}");
        }
        for good in [
            "api.payments.example.com.",
            "api.payments.example.com",
            "*.example.com",
            "_dmarc.example.com",
        ] {
            assert!(check_dns_name(good).is_ok(), "{good}");
        }
        for bad in [
            "localhost",
            "api..example.com",
            "-api.example.com",
            "api example.com",
            "",
            "a.*.com",
        ] {
            assert!(check_dns_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_stay_plain() {
        assert!(check_name("payments", "runbook").is_ok());
        assert!(check_name("app-tier_2.v1", "wave").is_ok());
        for bad in ["", "-db", "db tier", "db/app"] {
            assert!(check_name(bad, "wave").is_err(), "{bad}");
        }
    }
}
