package protocol

// Fuzz targets for every body type: each decodes arbitrary bytes as the
// body of one frame type. Nothing may panic; an error must be ErrBadBody; a
// body that decodes must be a map whose integers fit their fields, and must
// survive encoding and decoding again unchanged. The seeds are the
// document's test vectors of the type and testdata/fuzz/<target>/. `make
// fuzz` runs each for a bounded count.

import "testing"

func FuzzBodyError(f *testing.F) { fuzzBody(f, TypeError) }

func FuzzBodyPing(f *testing.F) { fuzzBody(f, TypePing) }

func FuzzBodyPong(f *testing.F) { fuzzBody(f, TypePong) }

func FuzzBodyOK(f *testing.F) { fuzzBody(f, TypeOK) }

func FuzzBodyKick(f *testing.F) { fuzzBody(f, TypeKick) }

func FuzzBodyRedirect(f *testing.F) { fuzzBody(f, TypeRedirect) }

func FuzzBodyRegister(f *testing.F) { fuzzBody(f, TypeRegister) }

func FuzzBodyLogin(f *testing.F) { fuzzBody(f, TypeLogin) }

func FuzzBodyLoginOK(f *testing.F) { fuzzBody(f, TypeLoginOK) }

func FuzzBodyLogout(f *testing.F) { fuzzBody(f, TypeLogout) }

func FuzzBodySend(f *testing.F) { fuzzBody(f, TypeSend) }

func FuzzBodySendAck(f *testing.F) { fuzzBody(f, TypeSendAck) }

func FuzzBodyPush(f *testing.F) { fuzzBody(f, TypePush) }

func FuzzBodyAck(f *testing.F) { fuzzBody(f, TypeAck) }

func FuzzBodySync(f *testing.F) { fuzzBody(f, TypeSync) }

func FuzzBodySyncResult(f *testing.F) { fuzzBody(f, TypeSyncResult) }

func FuzzBodyHistory(f *testing.F) { fuzzBody(f, TypeHistory) }

func FuzzBodyHistoryResult(f *testing.F) { fuzzBody(f, TypeHistoryResult) }

func FuzzBodyDeleteHistory(f *testing.F) { fuzzBody(f, TypeDeleteHistory) }

func FuzzBodyConversations(f *testing.F) { fuzzBody(f, TypeConversations) }

func FuzzBodyConversationList(f *testing.F) { fuzzBody(f, TypeConversationList) }

func FuzzBodyUserSearch(f *testing.F) { fuzzBody(f, TypeUserSearch) }

func FuzzBodyUserList(f *testing.F) { fuzzBody(f, TypeUserList) }

func FuzzBodyProfileGet(f *testing.F) { fuzzBody(f, TypeProfileGet) }

func FuzzBodyUserInfo(f *testing.F) { fuzzBody(f, TypeUserInfo) }

func FuzzBodyProfileUpdate(f *testing.F) { fuzzBody(f, TypeProfileUpdate) }

func FuzzBodyFriendRequest(f *testing.F) { fuzzBody(f, TypeFriendRequest) }

func FuzzBodyFriendRequests(f *testing.F) { fuzzBody(f, TypeFriendRequests) }

func FuzzBodyFriendRequestList(f *testing.F) { fuzzBody(f, TypeFriendReqList) }

func FuzzBodyFriendAnswer(f *testing.F) { fuzzBody(f, TypeFriendAnswer) }

func FuzzBodyFriendDelete(f *testing.F) { fuzzBody(f, TypeFriendDelete) }

func FuzzBodyFriendEvent(f *testing.F) { fuzzBody(f, TypeFriendEvent) }

func FuzzBodyFriends(f *testing.F) { fuzzBody(f, TypeFriends) }

func FuzzBodyFriendList(f *testing.F) { fuzzBody(f, TypeFriendList) }

func FuzzBodyGroupCreate(f *testing.F) { fuzzBody(f, TypeGroupCreate) }

func FuzzBodyGroupInfo(f *testing.F) { fuzzBody(f, TypeGroupInfo) }

func FuzzBodyGroupJoin(f *testing.F) { fuzzBody(f, TypeGroupJoin) }

func FuzzBodyGroupInvite(f *testing.F) { fuzzBody(f, TypeGroupInvite) }

func FuzzBodyGroupLeave(f *testing.F) { fuzzBody(f, TypeGroupLeave) }

func FuzzBodyGroupRename(f *testing.F) { fuzzBody(f, TypeGroupRename) }

func FuzzBodyGroupRemove(f *testing.F) { fuzzBody(f, TypeGroupRemove) }

func FuzzBodyGroupTransfer(f *testing.F) { fuzzBody(f, TypeGroupTransfer) }

func FuzzBodyGroupDisband(f *testing.F) { fuzzBody(f, TypeGroupDisband) }

func FuzzBodyGroups(f *testing.F) { fuzzBody(f, TypeGroups) }

func FuzzBodyGroupList(f *testing.F) { fuzzBody(f, TypeGroupList) }

func FuzzBodyGroupMembers(f *testing.F) { fuzzBody(f, TypeGroupMembers) }

func FuzzBodyMemberList(f *testing.F) { fuzzBody(f, TypeMemberList) }

func FuzzBodyGroupEvent(f *testing.F) { fuzzBody(f, TypeGroupEvent) }

func FuzzBodyPresence(f *testing.F) { fuzzBody(f, TypePresence) }

func FuzzBodySearch(f *testing.F) { fuzzBody(f, TypeSearch) }

func FuzzBodySearchResult(f *testing.F) { fuzzBody(f, TypeSearchResult) }
