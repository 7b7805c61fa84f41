//! ConsumerGroupDescribe (KIP-848): state, epochs and members of consumer-protocol groups,
//! with each member's current and target assignment.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, RequestHeader,
};
use sluice_controller::MetadataImage;

use super::{authorize_group, authorized_operations};
use super::{str_bytes, topic_name};
use crate::context::Ctx;
use crate::error::{group_code, GroupError};
use crate::group::consumer::{self, ConsumerGroupView};
use crate::request_scope::RequestScope;
use crate::security::authorizer::Operation::Describe;
use crate::security::authorizer::Resource;

/// Kafka's MemberType for a member speaking the consumer protocol (v1+).
const CONSUMER_MEMBER: i8 = 1;

/// Describes each group; unknown and classic groups get GROUP_ID_NOT_FOUND, as in Kafka.
pub async fn handle(
    ctx: &Ctx,
    scope: &RequestScope,
    header: &RequestHeader,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let image = ctx.controller.image();
    let version = header.request_api_version;
    let groups = req
        .group_ids
        .iter()
        .map(|id| {
            let mut out = DescribedGroup::default().with_group_id(id.clone());
            if req.include_authorized_operations {
                let image = ctx.controller.image();
                out.authorized_operations =
                    authorized_operations(ctx, scope, &image, Resource::Group, id.as_str());
            }
            if let Err(e) = authorize_group(ctx, scope, Describe, id.as_str()) {
                return out
                    .with_error_code(e.code())
                    .with_error_message(Some(e.message()));
            }
            match ctx
                .groups
                .describe_consumer(ctx.coordinator_io(), id.as_str())
            {
                Ok(g) => described(out, g, &image, version),
                Err(message) => out
                    .with_error_code(group_code(Some(GroupError::GroupIdNotFound)))
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn described(
    out: DescribedGroup,
    g: ConsumerGroupView,
    image: &MetadataImage,
    version: i16,
) -> DescribedGroup {
    let members = g
        .members
        .into_iter()
        .map(|(m, target)| {
            let member = Member::default()
                .with_member_id(str_bytes(m.id))
                .with_instance_id(m.instance_id.map(str_bytes))
                .with_rack_id(m.rack.map(str_bytes))
                .with_member_epoch(m.epoch)
                .with_client_id(str_bytes(m.client_id))
                .with_client_host(str_bytes(m.client_host))
                .with_subscribed_topic_names(m.subscribed.iter().map(|t| topic_name(t)).collect())
                .with_subscribed_topic_regex(m.regex.map(|r| str_bytes(r.as_str())))
                .with_assignment(assignment(&m.owned, image))
                .with_target_assignment(assignment(&target, image));
            // v0 has no member type: it stays at its default (-1, unknown) there.
            if version >= 1 {
                member.with_member_type(CONSUMER_MEMBER)
            } else {
                member
            }
        })
        .collect();
    out.with_group_state(str_bytes(g.state.name()))
        .with_group_epoch(g.epoch)
        .with_assignment_epoch(g.assignment_epoch)
        .with_assignor_name(str_bytes(consumer::ASSIGNOR))
        .with_members(members)
}

/// Partitions with topic id and name; topics deleted since are left out (no name to show).
fn assignment(a: &consumer::Assignment, image: &MetadataImage) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.iter()
            .filter(|(_, ps)| !ps.is_empty())
            .filter_map(|(id, ps)| {
                let topic = image.topic_by_id(id)?;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_topic_name(topic_name(&topic.name))
                        .with_partitions(ps.iter().copied().collect()),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::consumer::{ConsumerGroup, Heartbeat};
    use kafka_protocol::protocol::Encodable;
    use sluice_controller::{BrokerInfo, Command, NewTopic};
    use std::time::Instant;

    #[test]
    fn members_carry_topic_names_and_member_type_only_from_v1() {
        let mut img = MetadataImage::default();
        img.apply(&Command::RegisterBroker(BrokerInfo {
            id: 1,
            host: "h".into(),
            port: 1,
            rack: None,
            fenced: false,
            endpoints: Vec::new(),
        }));
        img.apply(&Command::CreateTopics(vec![NewTopic {
            name: "orders".into(),
            id: uuid::Uuid::from_u128(5),
            num_partitions: 2,
            replication_factor: 1,
            assignment: None,
            configs: Default::default(),
        }]));
        let mut g = ConsumerGroup::default();
        g.heartbeat(
            Heartbeat {
                member_id: "m".into(),
                member_epoch: 0,
                instance_id: None,
                subscribed: None,
                regex: Some("ord.*".into()),
                rack: Some("r1".into()),
                owned: None,
                client_id: "c".into(),
                client_host: "/h".into(),
            },
            &img,
            Instant::now(),
        );
        for version in [0, 1] {
            let d = described(DescribedGroup::default(), g.view(), &img, version);
            assert_eq!(d.group_state.as_str(), "Reconciling");
            assert_eq!(d.assignor_name.as_str(), "uniform");
            let m = &d.members[0];
            assert_eq!(m.member_type, if version == 0 { -1 } else { 1 });
            assert_eq!(m.rack_id.as_ref().map(|r| r.as_str()), Some("r1"));
            assert_eq!(
                m.subscribed_topic_regex.as_ref().map(|r| r.as_str()),
                Some("ord.*")
            );
            let target = &m.target_assignment.topic_partitions[0];
            assert_eq!(target.topic_name.0.as_str(), "orders");
            assert_eq!(target.partitions, vec![0, 1]);
            assert!(
                m.assignment.topic_partitions.is_empty(),
                "nothing owned yet"
            );
            let resp = ConsumerGroupDescribeResponse::default().with_groups(vec![d]);
            let mut buf = bytes::BytesMut::new();
            resp.encode(&mut buf, version).unwrap();
        }
    }
}
