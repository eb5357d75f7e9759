/// A person in the demo's chat workspaces: a Slack user id or a Microsoft Entra object id, and a name.
public struct DemoMember: Sendable {
    public var id: String
    public var name: String

    public init(id: String, name: String) {
        self.id = id
        self.name = name
    }
}
