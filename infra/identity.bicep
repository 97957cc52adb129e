// The one identity the Function App uses for everything it reaches: storage (host and app data), Key Vault
// references, Application Insights ingestion and Communication Services e-mail. User-assigned, so role
// assignments exist before the app starts and survive re-creating the app.
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
